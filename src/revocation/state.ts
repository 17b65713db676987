import type { AgentToken } from "../tokens/claims.js";

/** Selectors that revoke tokens issued up to a point in time. */
export type TokenSelector = "jti" | "agent" | "grant" | "upstream" | "environment" | "issued_before" | "all";
export type RevocationSelector = TokenSelector | "kill_switch";

/**
 * A stored revocation as the state needs it. A token revocation kills every matching token issued at or
 * before `revokedAt` (for `issued_before`, at or before the time in `value`); a jti revocation can be
 * forgotten after `expiresAt`, when its token has expired anyway. A kill switch freezes every token while
 * it is not lifted.
 */
export type RevocationRecord =
  | { selector: TokenSelector; value: string; revokedAt: Date; expiresAt?: Date | null }
  | { selector: "kill_switch"; id: string; lifted: boolean };

type TokenFacts = Pick<AgentToken, "jti" | "agentId" | "grantId" | "upstream" | "issuedAt"> & ExchangeLineage;

/**
 * Token exchange (src/tokens/tokens.ts): a token exchanged from another dies with every ancestor. A
 * revoked ancestor jti revokes it, and cutoffs compare with its root's iat, when the chain began.
 */
type ExchangeLineage = Partial<Pick<AgentToken, "ancestors" | "rootIssuedAt">>;
const cutoffTime = (token: Pick<AgentToken, "issuedAt"> & ExchangeLineage) => token.rootIssuedAt ?? token.issuedAt;

/** Selectors with a single, global cutoff: only the latest matters. */
const GLOBAL: ReadonlySet<TokenSelector> = new Set(["issued_before", "all"]);

const REASONS: Record<Exclude<TokenSelector, "jti">, string> = {
  agent: "agent's tokens revoked",
  grant: "grant's tokens revoked",
  upstream: "upstream's tokens revoked",
  environment: "environment's tokens revoked",
  issued_before: "tokens issued before a cutoff revoked",
  all: "all tokens revoked",
};

/**
 * The revocation state a broker checks on every proxied call, kept in memory. Cutoffs compare with the
 * token's `iat` (whole seconds), so a token issued in the same second as a revocation counts as revoked:
 * the safe side of the rounding. Applying a record twice changes nothing, so records can be replayed.
 */
export class RevocationState {
  /** jti → when it may be forgotten (ms; Infinity if never). */
  readonly #jtis = new Map<string, number>();
  /**
   * Selector → value (`*` for the global ones) → latest cutoff, in whole seconds. Looked up by the token's
   * own ids on every call: no key is built per call.
   */
  readonly #cutoffs = new Map<TokenSelector, Map<string, number>>();
  readonly #engagedKillSwitches = new Set<string>();

  static from(records: Iterable<RevocationRecord>): RevocationState {
    const state = new RevocationState();
    for (const r of records) state.add(r);
    return state;
  }

  add(record: RevocationRecord): void {
    if (record.selector === "kill_switch") {
      if (record.lifted) this.#engagedKillSwitches.delete(record.id);
      else this.#engagedKillSwitches.add(record.id);
      return;
    }
    if (record.selector === "jti") {
      this.#jtis.set(record.value, record.expiresAt?.getTime() ?? Infinity);
      return;
    }
    const value = GLOBAL.has(record.selector) ? "*" : record.value;
    const seconds = Math.floor(cutoffMs(record) / 1000);
    let cutoffs = this.#cutoffs.get(record.selector);
    if (cutoffs === undefined) this.#cutoffs.set(record.selector, (cutoffs = new Map()));
    cutoffs.set(value, Math.max(seconds, cutoffs.get(value) ?? -Infinity));
  }

  /** Drops jti revocations of tokens that expired before `expiredBeforeMs`: they can never be presented again. */
  forgetExpired(expiredBeforeMs: number): void {
    for (const [jti, expiresAt] of this.#jtis) if (expiresAt <= expiredBeforeMs) this.#jtis.delete(jti);
  }

  get size(): number {
    let cutoffs = 0;
    for (const values of this.#cutoffs.values()) cutoffs += values.size;
    return this.#jtis.size + cutoffs + this.#engagedKillSwitches.size;
  }

  get killSwitchEngaged(): boolean {
    return this.#engagedKillSwitches.size > 0;
  }

  /** Why the token is revoked, or null if it is not (the kill switch is separate). Most specific reason first. */
  reasonRevoked(token: TokenFacts): string | null {
    if (this.#jtis.has(token.jti)) return "token revoked";
    for (const jti of token.ancestors ?? []) if (this.#jtis.has(jti)) return "parent token revoked";
    const issuedAt = cutoffTime(token);
    if (this.#revokedBy("agent", token.agentId, issuedAt)) return REASONS.agent;
    if (this.#revokedBy("grant", token.grantId, issuedAt)) return REASONS.grant;
    if (this.#revokedBy("upstream", token.upstream, issuedAt)) return REASONS.upstream;
    if (this.#revokedBy("issued_before", "*", issuedAt)) return REASONS.issued_before;
    if (this.#revokedBy("all", "*", issuedAt)) return REASONS.all;
    return null;
  }

  /** Environments belong to upstreams, not tokens: checked once the proxy has resolved the upstream. */
  reasonEnvironmentRevoked(environment: string, token: Pick<AgentToken, "issuedAt"> & ExchangeLineage): string | null {
    return this.#revokedBy("environment", environment, cutoffTime(token)) ? REASONS.environment : null;
  }

  #revokedBy(selector: TokenSelector, value: string, issuedAt: number): boolean {
    const cutoff = this.#cutoffs.get(selector)?.get(value);
    return cutoff !== undefined && issuedAt <= cutoff;
  }
}

/**
 * When a token revocation cuts off. `issued_before` carries its own time, which the API refuses in the
 * future; a row that was written around the API with an unreadable or later time cuts off at its creation,
 * the most a valid one could mean.
 */
function cutoffMs(record: Extract<RevocationRecord, { revokedAt: Date }>): number {
  const createdAt = record.revokedAt.getTime();
  if (record.selector !== "issued_before") return createdAt;
  const given = Date.parse(record.value);
  return Number.isFinite(given) ? Math.min(given, createdAt) : createdAt;
}
