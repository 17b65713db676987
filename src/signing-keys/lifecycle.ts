/** When signing keys are replaced and retired: pure decisions, applied by src/signing-keys/signing-keys.ts. */

export type LiveKey = { kid: string; createdAt: Date };

/** The key that signs: the newest live one. */
export function activeKey<K extends LiveKey>(live: readonly K[]): K | undefined {
  return [...live].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0];
}

/** A new key is due when there is none, or when the active one is `rotateAfterMs` old. */
export function rotationDue(live: readonly LiveKey[], now: Date, rotateAfterMs: number): boolean {
  const active = activeKey(live);
  return !active || now.getTime() - active.createdAt.getTime() >= rotateAfterMs;
}

/**
 * The live keys that may now leave the key set (and so the JWKS and verification). A key qualifies
 * when it is not the active one, when it was superseded at least `graceMs` ago (replicas switch to a
 * new key on their next reload, so until then they may still sign with the old one), and when the
 * last token it signed has expired, clock-skew leeway included. `lastExpiry` maps a kid to the latest
 * expiry of the tokens it signed; a kid absent from it signed none.
 */
export function keysToRetire(
  live: readonly LiveKey[],
  lastExpiry: ReadonlyMap<string, Date>,
  now: Date,
  options: { graceMs: number; leewaySeconds: number },
): string[] {
  const newestFirst = [...live].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  const retire: string[] = [];
  for (let i = 1; i < newestFirst.length; i++) {
    const key = newestFirst[i]!;
    const supersededAt = newestFirst[i - 1]!.createdAt.getTime();
    if (now.getTime() - supersededAt < options.graceMs) continue;
    const expiry = lastExpiry.get(key.kid);
    if (expiry && expiry.getTime() + options.leewaySeconds * 1000 >= now.getTime()) continue;
    retire.push(key.kid);
  }
  return retire;
}
