import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { patternCovers } from "../policy/paths.js";
import type { HttpMethod } from "../policy/decide.js";
import { MAX_TOKEN_TTL_SECONDS, scopeOf } from "./claims.js";
import { TOKEN_ALG, type KeySet } from "./signing-keys.js";

export type TokenRequest = { ttlSeconds?: number; methods?: HttpMethod[]; paths?: string[] };
export type GrantLimits = { methods: readonly HttpMethod[]; paths: readonly string[]; maxTtlSeconds: number };
export type Capabilities = { methods: HttpMethod[]; paths: string[]; ttlSeconds: number };

/**
 * What the agent asked for, checked against the grant: a subset is granted as asked, the grant's own
 * limits fill what was not asked, and anything wider is refused (never silently narrowed or widened).
 */
export function narrowCapabilities(
  grant: GrantLimits,
  request: TokenRequest,
): { ok: true; capabilities: Capabilities } | { ok: false; reason: string } {
  const maxTtl = Math.min(grant.maxTtlSeconds, MAX_TOKEN_TTL_SECONDS);
  const ttlSeconds = request.ttlSeconds ?? maxTtl;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) return { ok: false, reason: "ttlSeconds must be a positive integer" };
  if (ttlSeconds > maxTtl) return { ok: false, reason: `ttlSeconds exceeds the grant's maximum of ${maxTtl}` };

  const methods = request.methods ? [...new Set(request.methods)] : [...grant.methods];
  if (methods.length === 0) return { ok: false, reason: "no methods requested" };
  const extraMethod = methods.find((m) => !grant.methods.includes(m));
  if (extraMethod) return { ok: false, reason: `the grant does not allow ${extraMethod}` };

  const paths = request.paths ? [...new Set(request.paths)] : [...grant.paths];
  if (paths.length === 0) return { ok: false, reason: "no paths requested" };
  const extraPath = paths.find((p) => !grant.paths.some((g) => patternCovers(g, p)));
  if (extraPath) return { ok: false, reason: `the grant does not cover path ${extraPath}` };

  return { ok: true, capabilities: { methods, paths, ttlSeconds } };
}

export type SignedToken = { jti: string; token: string; issuedAt: Date; expiresAt: Date; scope: string };

export async function signAgentToken(
  keys: KeySet,
  claims: { issuer: string; audience: string; agentId: string; clientId: string; grantId: string; upstream: string },
  capabilities: Capabilities,
  now = new Date(),
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
  return { jti, token, issuedAt: new Date(iat * 1000), expiresAt: new Date(exp * 1000), scope };
}
