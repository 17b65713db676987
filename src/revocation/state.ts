import type { AgentToken } from "../tokens/claims.js";

export type RevocationSelector = "jti" | "agent" | "grant" | "all";

/** A stored revocation: kills every matching token issued at or before `revokedAt`. */
export type RevocationRecord = { selector: RevocationSelector; value: string; revokedAt: Date };

/**
 * The revocation state a broker checks on every proxied call, kept in memory. Selector revocations
 * compare with the token's `iat` (whole seconds), so a token issued in the same second as a revocation
 * counts as revoked: the safe side of the rounding.
 */
export class RevocationState {
  readonly #jtis = new Set<string>();
  readonly #latestBySelector = new Map<string, number>();

  static from(records: Iterable<RevocationRecord>): RevocationState {
    const state = new RevocationState();
    for (const r of records) state.add(r);
    return state;
  }

  add(record: RevocationRecord): void {
    if (record.selector === "jti") {
      this.#jtis.add(record.value);
      return;
    }
    const key = `${record.selector}:${record.value}`;
    const seconds = Math.floor(record.revokedAt.getTime() / 1000);
    this.#latestBySelector.set(key, Math.max(seconds, this.#latestBySelector.get(key) ?? 0));
  }

  /** Why the token is revoked, or null if it is not. */
  reasonRevoked(token: Pick<AgentToken, "jti" | "agentId" | "grantId" | "issuedAt">): string | null {
    if (this.#jtis.has(token.jti)) return "token revoked";
    const checks: [string, string][] = [
      [`agent:${token.agentId}`, "agent's tokens revoked"],
      [`grant:${token.grantId}`, "grant's tokens revoked"],
      ["all:*", "all tokens revoked"],
    ];
    for (const [key, reason] of checks) {
      const revokedAt = this.#latestBySelector.get(key);
      if (revokedAt !== undefined && token.issuedAt <= revokedAt) return reason;
    }
    return null;
  }
}
