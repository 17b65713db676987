import type { UpstreamCredential } from "./credentials/contract.js";

/**
 * Credentials an upstream's replaced (a rotated secret, a new kind or base URL): their secrets stay
 * redacted from its responses for a while, on the replica that used them. Pure.
 */

/** How long a replaced credential's secrets are still redacted: calls made with it may still be answered, and the upstream may go on accepting it. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

/**
 * The most replaced credentials kept per upstream. Each adds its forms to every search of the upstream's
 * responses; a rotation a day needs one, and a run of them (a rotation job retried in a loop) stays
 * bounded.
 */
export const MAX_RETIRED_CREDENTIALS = 8;

export type RetiredCredential = { readonly credential: UpstreamCredential; readonly until: number };

/**
 * The credentials still redacted once `replaced` is: those whose overlap has not ended, oldest first, then
 * it. Past MAX_RETIRED_CREDENTIALS the one replaced just before it goes, never the oldest: a run of
 * rotations (a job gone wrong, or someone who can write an upstream's secret but never read it) must not
 * uncover the credential that was in service before it, which the upstream may still accept and whose
 * echoes (request logs, cached answers) may still be served; the newest replaced is the likeliest to
 * still be live, and is kept too.
 */
export function retire(retired: readonly RetiredCredential[], replaced: UpstreamCredential, now: number): RetiredCredential[] {
  const kept = [...retired.filter((r) => r.until > now), { credential: replaced, until: now + ROTATION_OVERLAP_MS }];
  return kept.length > MAX_RETIRED_CREDENTIALS ? [...kept.slice(0, MAX_RETIRED_CREDENTIALS - 1), kept.at(-1)!] : kept;
}

/** The secrets of the credentials whose overlap has not ended at `now`. */
export function retiredSecrets(retired: readonly RetiredCredential[], now: number): (readonly string[])[] {
  return retired.filter((r) => r.until > now).map((r) => r.credential.injectedSecrets());
}
