import type { PrismaClient } from "@prisma/client";
import type { BudgetLimits, Budgets } from "../policy/rules.js";

/** One unit count a call takes from one counter. */
export type CounterTake = {
  key: string;
  /** Which limit, for the refusal: e.g. `perToken.requestsPerMinute`. */
  limit: string;
  /** The minute for per-minute limits, 0 for lifetime limits. */
  window: number;
  amount: number;
  capacity: number;
  expiresAt: Date | null;
  /** Seconds until the window reopens; null for a lifetime limit, which never does. */
  retryAfterSeconds: number | null;
};

export type BudgetedCall = { jti: string; tokenExpiresAt: Date; grantId: string; destructive: number; now: number };

/**
 * The counters one allowed call takes under a grant's budgets: a request per minute and in total, and
 * one destructive unit per destructive operation. Pure. Sorted by key, so concurrent calls lock
 * counters in the same order.
 */
export function countersFor(budgets: Budgets | null, call: BudgetedCall): CounterTake[] {
  const minute = Math.floor(call.now / 60_000);
  const untilNextMinute = Math.max(1, Math.ceil(((minute + 1) * 60_000 - call.now) / 1000));
  const scopes: [string, string, BudgetLimits | undefined, Date | null][] = [
    ["perToken", `token:${call.jti}`, budgets?.perToken, call.tokenExpiresAt],
    ["perGrant", `grant:${call.grantId}`, budgets?.perGrant, null],
  ];
  const takes: CounterTake[] = [];
  for (const [scope, prefix, limits, expiresAt] of scopes) {
    if (!limits) continue;
    const take = (name: keyof BudgetLimits, suffix: string, window: number, amount: number, retryAfterSeconds: number | null) => {
      const capacity = limits[name];
      if (capacity !== undefined) takes.push({ key: `${prefix}:${suffix}`, limit: `${scope}.${name}`, window, amount, capacity, expiresAt, retryAfterSeconds });
    };
    take("requestsPerMinute", "rpm", minute, 1, untilNextMinute);
    take("maxCalls", "calls", 0, 1, null);
    if (call.destructive > 0) take("maxDestructiveCalls", "destructive", 0, call.destructive, null);
  }
  return takes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

// One statement takes every counter: a counter is created with the call's amount, or incremented only
// while the increment fits its capacity (a newer window starts it afresh). PostgreSQL evaluates the
// WHERE guard on the row as locked by this statement, so two concurrent calls cannot both take the last
// unit, on any replica. A counter that does not fit is simply not returned. `window` never moves back,
// so a replica whose clock lags counts into the newer window.
const TAKE_SQL = `
INSERT INTO "BudgetCounter" AS c ("key", "window", "used", "capacity", "expiresAt")
SELECT t."key", t."window", t."amount", t."capacity", t."expiresAt"
FROM jsonb_to_recordset($1::jsonb) AS t("key" text, "window" bigint, "amount" int, "capacity" int, "expiresAt" timestamp(3))
WHERE t."amount" <= t."capacity"
ORDER BY t."key"
ON CONFLICT ("key") DO UPDATE SET
  "used" = CASE WHEN EXCLUDED."window" > c."window" THEN EXCLUDED."used" ELSE c."used" + EXCLUDED."used" END,
  "window" = GREATEST(c."window", EXCLUDED."window"),
  "capacity" = EXCLUDED."capacity",
  "expiresAt" = EXCLUDED."expiresAt"
WHERE EXCLUDED."window" > c."window" OR c."used" + EXCLUDED."used" <= EXCLUDED."capacity"
RETURNING c."key"`;

class Exceeded extends Error {
  constructor(readonly take: CounterTake) {
    super("budget exceeded");
  }
}

/** Budget counters in the database, shared by every replica. */
export class BudgetService {
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly prisma: PrismaClient) {}

  /** Takes every counter or none (the transaction is rolled back); returns the limit that refused, if any. */
  async take(takes: CounterTake[]): Promise<CounterTake | null> {
    if (takes.length === 0) return null;
    const rows = JSON.stringify(
      takes.map((t) => ({ key: t.key, window: t.window, amount: t.amount, capacity: t.capacity, expiresAt: t.expiresAt?.toISOString() ?? null })),
    );
    try {
      await this.prisma.$transaction(async (tx) => {
        const taken = new Set((await tx.$queryRawUnsafe<{ key: string }[]>(TAKE_SQL, rows)).map((r) => r.key));
        const refused = takes.find((t) => !taken.has(t.key));
        if (refused) throw new Exceeded(refused);
      });
      return null;
    } catch (err) {
      if (err instanceof Exceeded) return err.take;
      throw err;
    }
  }

  /** Forgets the counters of expired tokens. */
  async pruneExpired(now = new Date()): Promise<void> {
    await this.prisma.budgetCounter.deleteMany({ where: { expiresAt: { lt: now } } });
  }

  start(intervalMs: number, onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => this.pruneExpired().catch(onError), intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
  }
}
