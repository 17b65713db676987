import type { PrismaClient } from "@prisma/client";

export type ActivityMinute = { minute: string; allowed: number; denied: number };

const MINUTE_MS = 60_000;

/**
 * Proxied calls per minute over the last `minutes` minutes (the current one last), split by decision, from
 * the audit log's `proxy` events: one per call the proxy decided. Minutes are compared as UTC epoch
 * numbers, so the database session's time zone cannot shift them.
 */
export async function proxyActivity(prisma: PrismaClient, minutes: number, now = Date.now()): Promise<ActivityMinute[]> {
  const lastMinute = Math.floor(now / MINUTE_MS);
  const firstMinute = lastMinute - minutes + 1;
  const rows = await prisma.$queryRaw<{ minute: number; decision: string | null; calls: number }[]>`
    SELECT floor(extract(epoch FROM "at") / 60)::int AS minute, "decision", count(*)::int AS calls
    FROM "AuditEvent"
    WHERE "kind" = 'proxy' AND "at" >= (to_timestamp(${firstMinute * 60}::float8) AT TIME ZONE 'UTC')
    GROUP BY 1, 2`;
  const buckets = Array.from({ length: minutes }, (_, i) => ({
    minute: new Date((firstMinute + i) * MINUTE_MS).toISOString(),
    allowed: 0,
    denied: 0,
  }));
  for (const row of rows) {
    const bucket = buckets[row.minute - firstMinute];
    if (!bucket) continue; // written after `now`
    if (row.decision === "allow") bucket.allowed += row.calls;
    else bucket.denied += row.calls;
  }
  return buckets;
}
