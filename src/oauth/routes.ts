import type { FastifyInstance, FastifyRequest } from "fastify";
import type { PrismaClient, Upstream } from "@prisma/client";
import { z } from "zod";
import { findAdminByKey, roleMay } from "../admin/keys.js";
import { clientAuthFields, formDecodeBasic, invalidClient, presentedClient, splitClientAuth, type ClientAuthenticator } from "../agents/client-auth.js";
import { isClientId } from "../agents/client-secret.js";
import { appendAudit } from "../audit/audit.js";
import { basicCredentials, bearerToken } from "../http/auth-header.js";
import { BROKER_ERROR_HEADER } from "../http/error-handler.js";
import { forbidden, KeywardError, unauthenticated } from "../http/errors.js";
import { parseForm } from "../http/form.js";
import { loadDecisionContext, type PolicyLookups } from "../policy/context.js";
import { standingRefusal } from "../policy/decide.js";
import { recordRevocation, type RevocationService } from "../revocation/service.js";
import type { AgentToken } from "../tokens/claims.js";
import { ACCESS_TOKEN_TYPE, introspectionOf, TOKEN_EXCHANGE_GRANT } from "./documents.js";
import { toOAuthErrorResponse } from "./errors.js";
import { requestedCapabilities, upstreamOfResource } from "./request.js";
import type { Tokens } from "../tokens/tokens.js";
import type { TokenVerifier } from "../tokens/verify.js";
import type { Upstreams } from "../upstreams/upstreams.js";

export type OAuthDeps = {
  prisma: PrismaClient;
  tokens: Tokens;
  clientAuth: ClientAuthenticator;
  verifyToken: TokenVerifier;
  revocations: RevocationService;
  /** For a token's environment, whose revocations the proxy checks once it knows the upstream. */
  upstreams: Pick<Upstreams, "findByName">;
  claims: { issuer: string; audience: string };
} & PolicyLookups;

const narrowing = { scope: z.string().max(4000).optional(), authorization_details: z.string().max(8000).optional() };
const clientCredentialsParams = z.strictObject({
  grant_type: z.literal("client_credentials"),
  ...narrowing,
  /** RFC 8707: the upstream the token is for, as `<issuer>/proxy/<upstream>`. */
  resource: z.string().max(2000).optional(),
});
const tokenExchangeParams = z.strictObject({
  grant_type: z.literal(TOKEN_EXCHANGE_GRANT),
  subject_token: z.string().min(1).max(8000),
  subject_token_type: z.literal(ACCESS_TOKEN_TYPE),
  requested_token_type: z.literal(ACCESS_TOKEN_TYPE).optional(),
  ...narrowing,
});
const tokenParams = z.strictObject({ token: z.string().min(1).max(8000), token_type_hint: z.string().max(100).optional() });

/**
 * The form bodies as a whole, for the OpenAPI document: each endpoint's parameters plus, where a client
 * authenticates, the client-authentication fields (client_secret_post, private_key_jwt) that
 * splitClientAuth takes apart. Built from the same schemas the handlers parse with.
 */
const FORM = "application/x-www-form-urlencoded";
const withClientAuth = <T extends z.ZodObject>(params: T) => params.extend(clientAuthFields.shape);
export const oauthForms = {
  token: z
    .discriminatedUnion("grant_type", [withClientAuth(clientCredentialsParams), withClientAuth(tokenExchangeParams)])
    .describe("client_credentials (scope names the grant), or an RFC 8693 token exchange."),
  revoke: withClientAuth(tokenParams),
  introspect: withClientAuth(tokenParams),
};

/**
 * Documents a form body without validating it in front of the handler: the handler parses it (parseParams),
 * after authenticating the client, so that errors keep their RFC 6749 §5.2 shape and order
 * (invalid_client before invalid_request, unsupported_grant_type, …).
 */
const documentedForm = (summary: string, body: z.ZodType) => ({
  schema: { summary, consumes: [FORM], body },
  validatorCompiler: () => (value: unknown) => ({ value }),
});

/** zod for form parameters, failing as RFC 6749 invalid_request with what was wrong. */
function parseParams<T extends z.ZodType>(schema: T, params: Record<string, string>): z.infer<T> {
  const parsed = schema.safeParse(params);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => (i.path.length ? `${i.path.join(".")}: ${i.message}` : i.message));
  throw new KeywardError(400, "invalid_request", problems.join("; "));
}

const formOf = (req: FastifyRequest) => (req.body ?? {}) as Record<string, string>;

/** The client authentication a request presents, parsed from the Authorization header and the form. */
function clientOf(req: FastifyRequest, auth: Record<string, string>) {
  const basic = req.headers.authorization === undefined ? undefined : formDecodeBasic(basicCredentials(req));
  return presentedClient(basic, parseParams(clientAuthFields, auth));
}

/**
 * The OAuth 2.0 endpoints: token (client_credentials, RFC 8693 token exchange), revocation (RFC 7009)
 * and introspection (RFC 7662). Form-encoded bodies only; errors in the RFC 6749 shape; never cached.
 * Unknown parameters are refused rather than ignored, so no client believes a parameter narrowed its
 * token when Keyward did not understand it.
 */
export async function oauthRoutes(app: FastifyInstance, deps: OAuthDeps): Promise<void> {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseForm(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.setErrorHandler((err, request, reply) => {
    const { status, body, headers, code } = toOAuthErrorResponse(err);
    if (status >= 500) request.log.error({ err }, "request failed");
    else request.log.info({ code: body.error, status }, "request refused");
    return reply.code(status).headers(headers).header(BROKER_ERROR_HEADER, code).send(body);
  });
  app.addHook("onSend", async (_request, reply) => {
    reply.header("cache-control", "no-store").header("pragma", "no-cache");
  });

  /**
   * A live token: valid, not revoked, not frozen by a kill switch. Null if it is not; 503 if the
   * revocation state is too old to say.
   */
  const liveToken = async (token: string): Promise<{ token: AgentToken; upstream: Upstream } | null> => {
    try {
      const verified = await deps.verifyToken(token);
      deps.revocations.assertNotRevoked(verified);
      // Live as the proxy judges it: its upstream's environment may be revoked too, and a token whose
      // upstream is gone reaches nothing.
      const upstream = await deps.upstreams.findByName(verified.upstream);
      if (!upstream) return null;
      deps.revocations.assertEnvironmentNotRevoked(verified, upstream.environment);
      return { token: verified, upstream };
    } catch (err) {
      if (err instanceof KeywardError && (err.status === 401 || err.status === 403)) return null;
      throw err;
    }
  };

  /**
   * Whether a live token can still make a call under its grant as it stands (the grant deleted, the
   * agent taken out of it, its environment no longer covered, approval now required): the proxy would
   * refuse every call, so introspection says it is not active.
   */
  const grantStillStands = async ({ token, upstream }: { token: AgentToken; upstream: Upstream }): Promise<boolean> => {
    const { grant, target, approval } = await loadDecisionContext(deps, { grantId: token.grantId, jtis: [token.jti, ...token.ancestors] }, upstream);
    if (!grant || grant.id !== token.grantId) return false;
    return standingRefusal({ ...token, approval }, grant, token.upstream, target) === null;
  };

  app.post("/oauth2/token", { ...documentedForm("OAuth 2.0 token endpoint (RFC 6749, RFC 8693)", oauthForms.token), config: { issuesTokens: true } }, async (req) => {
    const { auth, params } = splitClientAuth(formOf(req));
    const client = clientOf(req, auth);

    if (params.grant_type === "client_credentials") {
      const agent = await deps.clientAuth.authenticate(client, req.id);
      if (!agent) throw invalidClient("client authentication required");
      const body = parseParams(clientCredentialsParams, params);
      const { grant, ...narrower } = requestedCapabilities(body.scope, body.authorization_details);
      if (grant === undefined) throw new KeywardError(400, "invalid_scope", "name the grant: scope=grant:<name or id>");
      const resource = body.resource === undefined ? undefined : { upstream: upstreamOfResource(body.resource, deps.claims.issuer) };
      return deps.tokens.issue(agent, { grant, ...narrower }, req.id, undefined, resource);
    }

    if (params.grant_type === TOKEN_EXCHANGE_GRANT) {
      // The subject token is the credential; client authentication is optional, but must match it.
      const agent = await deps.clientAuth.authenticate(client, req.id);
      const body = parseParams(tokenExchangeParams, params);
      const parent = (await liveToken(body.subject_token))?.token;
      if (!parent) {
        await appendAudit(deps.prisma, {
          kind: "token.refused",
          actor: agent ? `agent:${agent.id}` : "anonymous",
          requestId: req.id,
          decision: "deny",
          reason: "invalid_request",
          details: { reason: "subject token is not a live Keyward token" },
        });
        throw new KeywardError(400, "invalid_request", "subject_token is invalid, expired or revoked");
      }
      const clientId = agent?.clientId ?? client.clientId;
      if (clientId !== undefined && clientId !== parent.clientId) {
        // Another client holding an agent's live token: a stolen token tried, which the security team must
        // see under the agent it was issued to, as every other refused exchange is seen.
        const reason = "the subject token was not issued to this client";
        await appendAudit(deps.prisma, {
          kind: "token.refused",
          actor: agent ? `agent:${agent.id}` : `client:${isClientId(clientId) ? clientId : "invalid"}`,
          requestId: req.id,
          agentId: parent.agentId,
          grantId: parent.grantId,
          decision: "deny",
          reason: "invalid_request",
          details: { exchangedFrom: parent.jti, reason },
        });
        throw new KeywardError(400, "invalid_request", reason);
      }
      const { grant, ...narrower } = requestedCapabilities(body.scope, body.authorization_details);
      if (grant !== undefined) throw new KeywardError(400, "invalid_scope", "an exchanged token keeps its grant: name none");
      return { ...(await deps.tokens.exchange(parent, narrower, req.id)), issued_token_type: ACCESS_TOKEN_TYPE };
    }

    if (params.grant_type === undefined) throw new KeywardError(400, "invalid_request", "grant_type is required");
    throw new KeywardError(400, "unsupported_grant_type", "grant_type is not supported");
  });

  // RFC 7009: an agent revokes a token of its own. A token that is already invalid needs nothing: 200.
  app.post("/oauth2/revoke", documentedForm("Revoke a token of this client's (RFC 7009)", oauthForms.revoke), async (req, reply) => {
    const { auth, params } = splitClientAuth(formOf(req));
    const agent = await deps.clientAuth.authenticate(clientOf(req, auth), req.id);
    if (!agent) throw invalidClient("client authentication required");
    const { token } = parseParams(tokenParams, params);
    // Revoking must work even while the revocation state is stale, so only the signature is checked.
    const verified = await deps.verifyToken(token).catch((err: unknown) => {
      if (err instanceof KeywardError && err.status === 401) return null;
      throw err;
    });
    if (!verified) return reply.code(200).send();
    if (verified.agentId !== agent.id) {
      // Another agent holding this one's live token: a stolen token tried, seen under the agent it was issued to.
      const reason = "the token was not issued to this client";
      await appendAudit(deps.prisma, {
        kind: "revocation.refused",
        actor: `agent:${agent.id}`,
        requestId: req.id,
        agentId: verified.agentId,
        jti: verified.jti,
        grantId: verified.grantId,
        decision: "deny",
        reason: "unauthorized_client",
        details: { reason },
      });
      throw new KeywardError(400, "unauthorized_client", reason);
    }
    const meta = { actor: `agent:${agent.id}`, requestId: req.id, reason: "revoked by its agent" };
    // Verified, so it needs no record: its revocation holds even before the record reaches the database.
    const target = { jti: verified.jti, expiresAt: new Date(verified.expiresAt * 1000) };
    const revocation = await deps.prisma.$transaction((tx) => recordRevocation(tx, target, meta));
    await deps.revocations.committed(revocation);
    return reply.code(200).send();
  });

  // The OAuth endpoints take POST only (RFC 6749 §3.2): any other method is told so, with Allow,
  // rather than a 404 that reads as if the endpoint did not exist.
  for (const url of ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"]) {
    app.route({
      method: ["GET", "PUT", "PATCH", "DELETE"],
      url,
      schema: { hide: true },
      handler: async () => {
        throw new KeywardError(405, "method_not_supported", `${url} takes POST only`, { headers: { allow: "POST" } });
      },
    });
  }

  /**
   * Who asks at the introspection endpoint: an admin or security key (Bearer, every token), or a client
   * authenticated as at the token endpoint (Basic, client_secret_post, private_key_jwt), which is told
   * about its own tokens only. An agent's own token is no credential here: it is what gets introspected.
   * Credentials in the Authorization header are checked before the body is read, like every admin
   * route's; a request with none must be a form, the only place left for them.
   */
  const introspectionCallers = new WeakMap<FastifyRequest, { agentId: string | null }>();
  const checkIntrospectionHeader = async (req: FastifyRequest) => {
    const authorization = req.headers.authorization;
    if (authorization === undefined) {
      if (req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase() !== FORM) throw invalidClient("client authentication required");
      return;
    }
    if (/^basic /i.test(authorization)) {
      const agent = await deps.clientAuth.authenticate(presentedClient(formDecodeBasic(basicCredentials(req)), {}), req.id);
      if (!agent) throw invalidClient("client authentication required");
      introspectionCallers.set(req, { agentId: agent.id });
      return;
    }
    const admin = await findAdminByKey(deps.prisma, bearerToken(req));
    if (!admin) throw unauthenticated("unauthenticated", "unknown or revoked admin key");
    if (!roleMay(admin.role, "introspect")) throw forbidden(`role ${admin.role} may not introspect`);
    introspectionCallers.set(req, { agentId: null });
  };
  const introspectionCaller = async (req: FastifyRequest, auth: Record<string, string>): Promise<{ agentId: string | null }> => {
    const known = introspectionCallers.get(req);
    // Basic was checked from the header; the form may still not add a second method or another client_id.
    if (known?.agentId) clientOf(req, auth);
    if (known) return known;
    const agent = await deps.clientAuth.authenticate(clientOf(req, auth), req.id);
    if (!agent) throw invalidClient("client authentication required: an agent's client credentials, or an admin key as Bearer");
    return { agentId: agent.id };
  };

  // RFC 7662: whether a token is live, and its claims if so.
  const introspect = documentedForm("Whether a token is live, and its claims (RFC 7662)", oauthForms.introspect);
  app.post("/oauth2/introspect", { ...introspect, config: { permission: "introspect" }, onRequest: checkIntrospectionHeader }, async (req) => {
    const { auth, params } = splitClientAuth(formOf(req));
    const caller = await introspectionCaller(req, auth);
    const { token } = parseParams(tokenParams, params);
    const live = await liveToken(token);
    // Another agent's token is, to this agent, no token at all (RFC 7662 §2.2 lets the server say so).
    if (!live || (caller.agentId !== null && live.token.agentId !== caller.agentId)) return { active: false };
    if (!(await grantStillStands(live))) return { active: false };
    return introspectionOf(live.token, deps.claims);
  });
}
