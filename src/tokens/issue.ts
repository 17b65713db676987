import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { patternCovers, withoutPlaceholderNames } from "../policy/paths.js";
import type { HttpMethod } from "../policy/decide.js";
import { MAX_TOKEN_TTL_SECONDS, scopeOf, type AgentToken } from "./claims.js";
import { TOKEN_ALG, type KeySet } from "../signing-keys/signing-keys.js";

export type TokenRequest = { ttlSeconds?: number; methods?: HttpMethod[]; paths?: string[] };
/** What a new token must stay within: a grant, or the parent token of an exchange. */
export type GrantLimits = { methods: readonly HttpMethod[]; paths: readonly string[]; maxTtlSeconds: number };
export type Capabilities = { methods: HttpMethod[]; paths: string[]; ttlSeconds: number };
/** The configured lifetimes: the default when a request names none, and the global ceiling. */
export type TtlPolicy = { defaultTtlSeconds: number; maxTtlSeconds: number };

/**
 * What the agent asked for, checked against the limits: a subset is granted as asked (its paths' named
 * placeholders as the `*` they mean, as the human approving it reads them), the limits fill what was not asked (the lifetime defaults to the configured default, capped), and anything wider is
 * refused (never silently narrowed or widened). `source` names the limits in refusals.
 */
export function narrowCapabilities(
  limits: GrantLimits,
  request: TokenRequest,
  ttl: TtlPolicy,
  source = "the grant",
): { ok: true; capabilities: Capabilities } | { ok: false; reason: string } {
  const maxTtl = Math.min(limits.maxTtlSeconds, ttl.maxTtlSeconds, MAX_TOKEN_TTL_SECONDS);
  if (maxTtl < 1) return { ok: false, reason: `${source} expires in less than a second` };
  const ttlSeconds = request.ttlSeconds ?? Math.min(ttl.defaultTtlSeconds, maxTtl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) return { ok: false, reason: "ttlSeconds must be a positive integer" };
  if (ttlSeconds > maxTtl) return { ok: false, reason: `ttlSeconds exceeds ${source}'s maximum of ${maxTtl}` };

  const methods = request.methods ? [...new Set(request.methods)] : [...limits.methods];
  if (methods.length === 0) return { ok: false, reason: "no methods requested" };
  const extraMethod = methods.find((m) => !limits.methods.includes(m));
  if (extraMethod) return { ok: false, reason: `${source} does not allow ${extraMethod}` };

  const paths = request.paths ? [...new Set(request.paths.map(withoutPlaceholderNames))] : [...limits.paths];
  if (paths.length === 0) return { ok: false, reason: "no paths requested" };
  const extraPath = paths.find((p) => !limits.paths.some((g) => patternCovers(g, p)));
  if (extraPath) return { ok: false, reason: `${source} does not cover path ${extraPath}` };

  return { ok: true, capabilities: { methods, paths, ttlSeconds } };
}

/**
 * A parent token as the limits of an exchange: what it and its grant as it stands now both allow, and the
 * life it has left. Its claims are what the grant allowed when it was issued: a grant narrowed since must
 * not be widened again for a child, as a direct token request would not be.
 */
export function parentLimits(parent: AgentToken, grant: GrantLimits, now: Date): GrantLimits {
  const remaining = parent.expiresAt - Math.floor(now.getTime() / 1000);
  return {
    methods: parent.methods.filter((method) => grant.methods.includes(method)),
    paths: commonPaths(parent.paths, grant.paths),
    maxTtlSeconds: Math.min(remaining, grant.maxTtlSeconds),
  };
}

/**
 * Patterns for what both sets of patterns match: each pattern of one that a pattern of the other covers.
 * Two patterns that only overlap (`/v1/{id}/x` and `/v1/a/{name}`) give nothing: their common part is no
 * pattern either holds, and doubt falls on refusing.
 */
function commonPaths(a: readonly string[], b: readonly string[]): string[] {
  const within = (inner: readonly string[], outer: readonly string[]) => inner.filter((p) => outer.some((o) => patternCovers(o, p)));
  return [...new Set([...within(a, b), ...within(b, a)])];
}

/** Present on a token obtained by exchange: who exchanged it and what it descends from. */
export type Delegation = { actor: { sub: string; client_id: string }; chain: string[]; rootIssuedAt: number };

/** The delegation claims of a child of `parent`: its chain is the parent's chain plus the parent. */
export function delegationFrom(parent: AgentToken): Delegation {
  return {
    actor: { sub: parent.agentId, client_id: parent.clientId },
    chain: [...parent.ancestors, parent.jti],
    rootIssuedAt: parent.rootIssuedAt,
  };
}

export type SignedToken = { jti: string; kid: string; token: string; issuedAt: Date; expiresAt: Date; scope: string };

export async function signAgentToken(
  keys: KeySet,
  claims: { issuer: string; audience: string; agentId: string; clientId: string; grantId: string; upstream: string },
  capabilities: Capabilities,
  now = new Date(),
  delegation?: Delegation,
): Promise<SignedToken> {
  const jti = randomUUID();
  const iat = Math.floor(now.getTime() / 1000);
  const exp = iat + capabilities.ttlSeconds;
  const scope = scopeOf(claims.upstream, capabilities.methods);
  const token = await new SignJWT({
    client_id: claims.clientId,
    grant: claims.grantId,
    scope,
    cap: { upstream: claims.upstream, methods: capabilities.methods, paths: capabilities.paths },
    ...(delegation && { act: delegation.actor, chain: delegation.chain, root_iat: delegation.rootIssuedAt }),
  })
    .setProtectedHeader({ alg: TOKEN_ALG, kid: keys.active.kid, typ: "at+jwt" })
    .setIssuer(claims.issuer)
    .setSubject(claims.agentId)
    .setAudience(claims.audience)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(keys.active.privateKey);
  return { jti, kid: keys.active.kid, token, issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000), scope };
}
