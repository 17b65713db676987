import { decodeProtectedHeader } from "jose";
import { deepFreeze } from "../util/freeze.js";
import { LruMap } from "../util/lru.js";
import type { AgentToken } from "./claims.js";
import type { TokenVerifier } from "./verify.js";

export type VerifiedTokenCacheOptions = {
  /** Most tokens remembered; the least recently used one goes first. */
  maxEntries: number;
  /** The same leeway on `exp` that verification allows. */
  leewaySeconds: number;
  /** Whether the key that signed a token is still in Keyward's key set. */
  keyKnown(kid: string): boolean;
  now?: () => number;
};

type Verified = { token: AgentToken; kid: string };

/**
 * `verify`, remembering the tokens that passed it by their exact string until they expire: the signature
 * and claim checks are the costliest step of a proxied call that involves no database. Only those checks
 * are skipped on a hit. Revocation, the kill switch, the grant as stored now and budgets are checked on
 * every call after this one, so a remembered token is refused as soon as any of them refuses it. A hit
 * also needs its signing key still in the key set (keys leave it only once their tokens have expired).
 * Failures are never remembered: a changed string is a different token, verified afresh.
 */
export function rememberVerifiedTokens(verify: TokenVerifier, options: VerifiedTokenCacheOptions): TokenVerifier {
  const verified = new LruMap<string, Verified>(options.maxEntries);
  const nowSeconds = () => Math.floor((options.now?.() ?? Date.now()) / 1000);
  return async (jws) => {
    const held = verified.get(jws);
    if (held) {
      if (nowSeconds() - options.leewaySeconds < held.token.expiresAt && options.keyKnown(held.kid)) return held.token;
      // Past exp (with verification's own leeway) or signed by a key since dropped: verified afresh, and refused.
      verified.delete(jws);
    }
    const token = deepFreeze(await verify(jws));
    verified.set(jws, { token, kid: decodeProtectedHeader(jws).kid as string });
    return token;
  };
}
