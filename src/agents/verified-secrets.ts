import { createHmac, randomBytes } from "node:crypto";
import { LruMap } from "../util/lru.js";

export type VerifiedSecretsOptions = {
  /** How long a successful verification is remembered (at most 5 minutes). */
  ttlMs: number;
  /** Most verifications remembered; the least recently used one goes first. */
  maxEntries: number;
};

/** What an agent's row says about its secrets now (src/agents/agents.ts). */
export type StoredSecrets = { secretHash: string; previousSecretHash: string | null; previousSecretExpiresAt: Date | null };

/**
 * Successful client-secret verifications, remembered for a few minutes so that an agent asking for
 * tokens pays one scrypt per `ttlMs`, not one per request. Stored hashes stay scrypt.
 *
 * Nothing here could authenticate anyone: entries are keyed by an HMAC of client id and presented
 * secret under a random key of this process, and hold only the stored hash the secret matched (which
 * the database holds anyway). An entry is honoured only while that hash is still one the agent's row,
 * read on every request, accepts: its current secret, or the previous one within its overlap. So a
 * deleted agent or a rotated secret stops a remembered secret at once on every replica, with no
 * notification needed. Failures are never remembered.
 */
export class VerifiedSecrets {
  readonly #key = randomBytes(32);
  readonly #entries: LruMap<string, { hash: string; until: number }>;

  constructor(private readonly options: VerifiedSecretsOptions) {
    if (options.ttlMs > 300_000) throw new Error("client secret verifications are remembered for at most 5 minutes");
    this.#entries = new LruMap(options.maxEntries);
  }

  /** True if this secret was verified against a hash the stored row still accepts at `now`. */
  accepted(clientId: string, secret: string, stored: StoredSecrets, now: Date): boolean {
    const id = this.#idOf(clientId, secret);
    const entry = this.#entries.get(id);
    if (!entry) return false;
    if (entry.until > now.getTime() && stillAccepted(entry.hash, stored, now)) return true;
    this.#entries.delete(id);
    return false;
  }

  /** Remembers that `secret` matched the stored `hash`. */
  remember(clientId: string, secret: string, hash: string, now: Date): void {
    this.#entries.set(this.#idOf(clientId, secret), { hash, until: now.getTime() + this.options.ttlMs });
  }

  #idOf(clientId: string, secret: string): string {
    // Length-prefixed, so no two (clientId, secret) pairs share an input.
    return createHmac("sha256", this.#key).update(`${clientId.length}:${clientId}:${secret}`).digest("base64url");
  }
}

function stillAccepted(hash: string, stored: StoredSecrets, now: Date): boolean {
  if (hash === stored.secretHash) return true;
  return hash === stored.previousSecretHash && stored.previousSecretExpiresAt !== null && stored.previousSecretExpiresAt > now;
}
