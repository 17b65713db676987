import type { UpstreamCredential } from "./credentials/contract.js";

/**
 * Credentials an upstream's replaced (a rotated secret, a new kind): their secrets stay redacted from its
 * responses for a while. The secrets each put into calls are kept in the database (RetiredUpstreamCredential,
 * encrypted under the master key), so every replica redacts them, across restarts; the tokens a replaced
 * credential minted never left the replica that minted them, and are remembered there with it. Pure.
 */

/** How long a replaced credential's secrets are still redacted: calls made with it may still be answered, and the upstream may go on accepting it. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

/**
 * The most replaced credentials kept per upstream. Each adds its forms to every search of the upstream's
 * responses; a rotation a day needs one, and a run of them (a rotation job retried in a loop) stays
 * bounded.
 */
export const MAX_RETIRED_CREDENTIALS = 8;

/** How often each replica deletes the stored secrets whose overlap has ended (none is read once it has). */
export const RETIRED_PRUNE_INTERVAL_MS = 3600_000;

/** Something redacted until `until` (epoch milliseconds): a replaced credential, or its stored row. */
type Retired = { readonly until: number };

export type RetiredCredential = { readonly credential: UpstreamCredential; readonly until: number };

/**
 * Of those still redacted and `replaced` (the one replaced now), those kept: the ones whose overlap has
 * not ended, oldest first, then it. Past MAX_RETIRED_CREDENTIALS the one replaced just before it goes,
 * never the oldest: a run of rotations (a job gone wrong, or someone who can write an upstream's secret
 * but never read it) must not uncover the credential that was in service before it, which the upstream
 * may still accept and whose echoes (request logs, cached answers) may still be served; the newest
 * replaced is the likeliest to still be live, and is kept too.
 */
export function keptAfterRetiring<T extends Retired>(retired: readonly T[], replaced: T, now: number): T[] {
  const kept = [...retired.filter((r) => r.until > now), replaced];
  return kept.length > MAX_RETIRED_CREDENTIALS ? [...kept.slice(0, MAX_RETIRED_CREDENTIALS - 1), kept.at(-1)!] : kept;
}

/** The credentials still redacted once `replaced` is, on this replica (see keptAfterRetiring). */
export function retire(retired: readonly RetiredCredential[], replaced: UpstreamCredential, now: number): RetiredCredential[] {
  return keptAfterRetiring(retired, { credential: replaced, until: now + ROTATION_OVERLAP_MS }, now);
}

/** A replaced credential's secrets as stored (decrypted): redacted until `until`. */
export type StoredSecrets = { readonly secrets: readonly string[]; readonly until: number };

/**
 * What is still redacted at `now`: the stored secrets, the credentials replaced on this replica (their
 * secrets change as they mint), and when that changes next (the earliest end of an overlap), so a call
 * until then need not look again.
 */
export function liveReplaced(
  stored: readonly StoredSecrets[],
  retired: readonly RetiredCredential[],
  now: number,
): { stored: (readonly string[])[]; retired: UpstreamCredential[]; changesAt: number } {
  const storedLive = stored.filter((s) => s.until > now);
  const retiredLive = retired.filter((r) => r.until > now);
  return {
    stored: storedLive.map((s) => s.secrets),
    retired: retiredLive.map((r) => r.credential),
    changesAt: Math.min(...storedLive.map((s) => s.until), ...retiredLive.map((r) => r.until)),
  };
}
