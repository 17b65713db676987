import { describe, expect, it } from "vitest";
import type { AgentToken } from "../../../src/tokens/claims.js";
import { authorizationServerMetadata, endpointOf, introspectionOf } from "../../../src/oauth/documents.js";

const token: AgentToken = {
  jti: "child",
  agentId: "agent-1",
  clientId: "kwc_1",
  grantId: "grant-1",
  upstream: "api",
  methods: ["GET"],
  paths: ["/v1/**"],
  scope: "api:GET",
  issuedAt: 100,
  expiresAt: 200,
  ancestors: [],
  rootIssuedAt: 100,
};
const claims = { issuer: "https://kw.example", audience: "keyward" };

describe("introspectionOf (RFC 7662)", () => {
  it("reports an active token's claims", () => {
    expect(introspectionOf(token, claims)).toEqual({
      active: true,
      token_type: "Bearer",
      iss: "https://kw.example",
      aud: "keyward",
      sub: "agent-1",
      client_id: "kwc_1",
      jti: "child",
      iat: 100,
      nbf: 100,
      exp: 200,
      scope: "api:GET",
      grant: "grant-1",
      cap: { upstream: "api", methods: ["GET"], paths: ["/v1/**"] },
    });
  });

  it("adds the delegation of an exchanged token", () => {
    const child = { ...token, ancestors: ["root", "parent"], rootIssuedAt: 50, actor: { sub: "agent-1", client_id: "kwc_1" } };
    expect(introspectionOf(child, claims)).toMatchObject({
      act: { sub: "agent-1", client_id: "kwc_1" },
      chain: ["root", "parent"],
      root_iat: 50,
    });
  });
});

describe("authorizationServerMetadata (RFC 8414)", () => {
  it("hangs every endpoint off the issuer, with or without a trailing slash", () => {
    for (const issuer of ["https://kw.example", "https://kw.example/"]) {
      expect(authorizationServerMetadata(issuer)).toMatchObject({
        issuer,
        token_endpoint: "https://kw.example/oauth2/token",
        jwks_uri: "https://kw.example/.well-known/jwks.json",
        introspection_endpoint: "https://kw.example/oauth2/introspect",
        revocation_endpoint: "https://kw.example/oauth2/revoke",
      });
    }
    expect(endpointOf("https://kw.example/base//", "/oauth2/token")).toBe("https://kw.example/base/oauth2/token");
  });

  it("offers only what Keyward does: no authorization endpoint, no symmetric assertions", () => {
    const metadata = authorizationServerMetadata("https://kw.example");
    expect(metadata.response_types_supported).toEqual([]);
    expect(metadata).not.toHaveProperty("authorization_endpoint");
    expect(metadata.token_endpoint_auth_signing_alg_values_supported).not.toContain("HS256");
    expect(metadata.authorization_details_types_supported).toEqual(["keyward_grant"]);
  });
});
