import { credentialUnavailable } from "../../http/errors.js";
import type { OutgoingRequest } from "./contract.js";

/**
 * An upstream access token and when it stops being valid (epoch milliseconds). `validUntil`, when later,
 * is how long the upstream may still accept it although Keyward stops using it at `expiresAt` (a token
 * endpoint that did not say how long its token lives): it is redacted from answers until then.
 */
export type ExpiringToken = { value: string; expiresAt: number; validUntil?: number };

/**
 * When to stop handing out a token and obtain the next one: a minute before it expires, or, for tokens
 * that live less than five minutes, when four fifths of its life are gone. A request is never sent
 * with a token about to expire on the way.
 */
export function refreshAt(obtainedAt: number, expiresAt: number): number {
  return expiresAt - Math.min(60_000, (expiresAt - obtainedAt) / 5);
}

/**
 * Replaced tokens (no longer handed out, still valid upstream) remembered for redaction at most. Every
 * token still handed out is remembered besides, however many: a cache narrowing tokens per grant scope
 * holds one per scope, and forgetting one in use would let every answer echo it unredacted.
 */
const MAX_REMEMBERED = 256;

/**
 * A token the upstream refused (401) is dropped, so the next call obtains another, at most this often per
 * cache (per upstream): an upstream refusing every token must not make Keyward call the token endpoint
 * once per call. A token revoked early costs the calls of up to this long.
 */
export const REJECTED_TOKEN_DROP_INTERVAL_MS = 30_000;

/**
 * Upstream tokens by key (e.g. the scope they were narrowed to), each obtained once and reused until its
 * refresh time. Concurrent callers for the same key share one call to `obtain` (single flight). A token
 * past its refresh time is forgotten before the refresh starts, so a failed refresh fails the callers:
 * a stale or expired token is never used.
 */
export class TokenCache {
  readonly #tokens = new Map<string, { value: string; refreshAt: number }>();
  readonly #pending = new Map<string, Promise<string>>();
  #minted: readonly { value: string; expiresAt: number }[] = [];
  #mintedValues: readonly string[] = Object.freeze([]);
  #lastRejectedDropAt = -Infinity;

  constructor(private readonly now: () => number) {}

  /**
   * Every token obtained that may still be valid upstream (those handed out, and the latest MAX_REMEMBERED
   * replaced ones), for response redaction: an answer to a call made with an older token can still repeat
   * it. A new array on change.
   */
  get minted(): readonly string[] {
    return this.#mintedValues;
  }

  #remember(token: ExpiringToken): void {
    const now = this.now();
    const valid = [...this.#minted.filter((t) => t.expiresAt > now), { value: token.value, expiresAt: Math.max(token.expiresAt, token.validUntil ?? 0) }];
    const handedOut = new Set([...this.#tokens.values()].map((t) => t.value));
    const replaced = valid.filter((t) => !handedOut.has(t.value));
    const forgotten = new Set(replaced.slice(0, Math.max(0, replaced.length - MAX_REMEMBERED)));
    this.#minted = valid.filter((t) => !forgotten.has(t));
    this.#mintedValues = Object.freeze(this.#minted.map((t) => t.value));
  }

  /**
   * The upstream refused `value` (revoked before it expired): stops handing it out so the next call
   * obtains another. Only if it is still handed out (a concurrent call may have had it refused after
   * another replaced it, which must stay) and at most once per REJECTED_TOKEN_DROP_INTERVAL_MS. It stays
   * remembered for redaction. Returns whether it was dropped.
   */
  dropRejected(value: string): boolean {
    const now = this.now();
    if (now - this.#lastRejectedDropAt < REJECTED_TOKEN_DROP_INTERVAL_MS) return false;
    // A token per narrowing at most (a handful): found by its value, as the refused request carried it.
    const key = [...this.#tokens].find(([, token]) => token.value === value)?.[0];
    if (key === undefined) return false;
    this.#lastRejectedDropAt = now;
    this.#tokens.delete(key);
    return true;
  }

  get(key: string, obtain: () => Promise<ExpiringToken>): Promise<string> {
    const cached = this.#tokens.get(key);
    if (cached && this.now() < cached.refreshAt) return Promise.resolve(cached.value);
    this.#tokens.delete(key);
    const pending = this.#pending.get(key);
    if (pending) return pending;

    const obtainedAt = this.now();
    const next = obtain()
      .then((token) => {
        const due = refreshAt(obtainedAt, token.expiresAt);
        if (this.now() >= due) throw credentialUnavailable("the token endpoint issued a token that is already (nearly) expired");
        this.#tokens.set(key, { value: token.value, refreshAt: due });
        this.#remember(token);
        return token.value;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, next);
    return next;
  }
}

const BEARER = "Bearer ";

/** UpstreamCredential.rejected for a kind that sends its cache's tokens as `Authorization: Bearer`. */
export function rejectedBearer(cache: TokenCache, request: OutgoingRequest): boolean {
  const sent = request.headers.authorization;
  return sent?.startsWith(BEARER) === true && cache.dropRejected(sent.slice(BEARER.length));
}
