import { CLIENT_ASSERTION_ALGS } from "../agents/client-keys.js";
import type { AgentToken } from "../tokens/claims.js";
import { AUTHORIZATION_DETAILS_TYPE } from "./request.js";

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"];

/** Keyward's endpoints hang off the issuer URL. */
export const endpointOf = (issuer: string, path: string) => issuer.replace(/\/+$/, "") + path;

/** RFC 8414 authorization server metadata. */
export function authorizationServerMetadata(issuer: string) {
  return {
    issuer,
    token_endpoint: endpointOf(issuer, "/oauth2/token"),
    jwks_uri: endpointOf(issuer, "/.well-known/jwks.json"),
    introspection_endpoint: endpointOf(issuer, "/oauth2/introspect"),
    revocation_endpoint: endpointOf(issuer, "/oauth2/revoke"),
    // No authorization endpoint: agents are clients acting for themselves.
    response_types_supported: [],
    grant_types_supported: ["client_credentials", TOKEN_EXCHANGE_GRANT],
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    revocation_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    // An agent introspects its own tokens as it authenticates at the token endpoint; admin and security
    // keys (Bearer, any token) are Keyward's own and not listed, as RFC 8414 has no name for them.
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGS],
    authorization_details_types_supported: [AUTHORIZATION_DETAILS_TYPE],
  };
}

/** RFC 7662 §2.2: an active token's claims, as the token carries them. */
export function introspectionOf(token: AgentToken, claims: { issuer: string; audience: string }) {
  return {
    active: true,
    token_type: "Bearer",
    iss: claims.issuer,
    aud: claims.audience,
    sub: token.agentId,
    client_id: token.clientId,
    jti: token.jti,
    iat: token.issuedAt,
    // Keyward's tokens are valid from the moment they are issued (src/tokens/issue.ts sets nbf = iat).
    nbf: token.issuedAt,
    exp: token.expiresAt,
    scope: token.scope,
    grant: token.grantId,
    cap: { upstream: token.upstream, methods: token.methods, paths: token.paths },
    ...(token.actor && { act: token.actor, chain: token.ancestors, root_iat: token.rootIssuedAt }),
  };
}
