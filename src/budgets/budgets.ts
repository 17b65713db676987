import type { PrismaClient } from "@prisma/client";
import type { BudgetLimits, Budgets } from "../policy/rules.js";
import { MAX_TOKEN_TTL_SECONDS } from "../tokens/claims.js";

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

export type BudgetedCall = {
  jti: string;
  /** The jtis the token was exchanged from (root first): each one's per-token budget pays for the call too. */
  ancestors: readonly string[];
  tokenExpiresAt: Date;
  grantId: string;
  destructive: number;
  now: number;
};

/** The key of a token's lifetime call counter. */
const callsKey = (jti: string) => `token:${jti}:calls`;

/**
 * The counters one allowed call takes under a grant's budgets: a request per minute and in total, and
 * one destructive unit per destructive operation. A token exchanged from another spends its own
 * per-token budget and every ancestor's, so a child token is never a fresh budget. Pure. Sorted by
 * key, so concurrent calls lock counters in the same order.
 */
export function countersFor(budgets: Budgets | null, call: BudgetedCall): CounterTake[] {
  const minute = Math.floor(call.now / 60_000);
  const untilNextMinute = Math.max(1, Math.ceil(((minute + 1) * 60_000 - call.now) / 1000));
  // An ancestor's expiry is not in the child's claims, but no token outlives its issue by more than
  // MAX_TOKEN_TTL_SECONDS and every ancestor was issued before now: its counter is kept that long at least.
  const ancestorsExpireBy = new Date(call.now + MAX_TOKEN_TTL_SECONDS * 1000);
  // [scope, counter key prefix, limits, counter expiry, what the refusal adds to the limit's name]
  const scopes: [string, string, BudgetLimits | undefined, Date | null, string][] = [
    ["perToken", `token:${call.jti}`, budgets?.perToken, call.tokenExpiresAt, ""],
    ...call.ancestors.map((jti): [string, string, BudgetLimits | undefined, Date, string] => [
      "perToken",
      `token:${jti}`,
      budgets?.perToken,
      ancestorsExpireBy,
      ` of ancestor token ${jti}`,
    ]),
    ["perGrant", `grant:${call.grantId}`, budgets?.perGrant, null, ""],
  ];
  const takes: CounterTake[] = [];
  for (const [scope, prefix, limits, expiresAt, of] of scopes) {
    if (!limits) continue;
    const take = (name: keyof BudgetLimits, suffix: string, window: number, amount: number, retryAfterSeconds: number | null) => {
      const capacity = limits[name];
      if (capacity !== undefined) takes.push({ key: `${prefix}:${suffix}`, limit: `${scope}.${name}${of}`, window, amount, capacity, expiresAt, retryAfterSeconds });
    };
    take("requestsPerMinute", "rpm", minute, 1, untilNextMinute);
    take("maxCalls", "calls", 0, 1, null);
    if (call.destructive > 0) take("maxDestructiveCalls", "destructive", 0, call.destructive, null);
  }
  return takes.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Why a counter refused a call, for the agent and the audit log. A call that takes several units (a bulk
 * delete, a GraphQL call with several destructive fields) may be refused by a budget not yet spent: it
 * is told what it asked for, not that the budget is spent.
 */
export const refusalReason = (take: Pick<CounterTake, "limit" | "capacity" | "amount">): string =>
  take.amount === 1 ? `${take.limit} (${take.capacity}) is spent` : `${take.limit} (${take.capacity}) has fewer than the ${take.amount} units this call takes left`;

// One statement takes every counter: a counter is created with the call's amount, or incremented only
// while the increment fits its capacity (a newer window starts it afresh). PostgreSQL evaluates the
// WHERE guard on the row as locked by this statement, so two concurrent calls cannot both take the last
// unit, on any replica. A counter that does not fit is simply not returned. A token's counter is kept
// until the latest expiry any call gave it (a child token's calls also count on its ancestors' counters). `window` never moves back,
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
  "expiresAt" = GREATEST(c."expiresAt", EXCLUDED."expiresAt")
WHERE EXCLUDED."window" > c."window" OR c."used" + EXCLUDED."used" <= EXCLUDED."capacity"
RETURNING c."key"`;

/**
 * The lifetime call budget (`perToken.maxCalls`) one of these tokens has already spent, if any: a token
 * exchanged from a spent one could make no call, so the exchange is refused with the same error.
 */
export async function spentCallBudget(
  prisma: Pick<PrismaClient, "budgetCounter">,
  budgets: Budgets | null,
  jtis: readonly string[],
): Promise<{ limit: string; capacity: number } | null> {
  const capacity = budgets?.perToken?.maxCalls;
  if (capacity === undefined || jtis.length === 0) return null;
  const spent = await prisma.budgetCounter.findFirst({
    where: { key: { in: jtis.map(callsKey) }, used: { gte: capacity } },
    select: { key: true },
  });
  return spent ? { limit: "perToken.maxCalls", capacity } : null;
}

// Units taken off counters: only in the window they were counted in, and never below zero.
const UNCOUNT_SQL = `
UPDATE "BudgetCounter" AS c SET "used" = c."used" - t."units"
FROM jsonb_to_recordset($1::jsonb) AS t("key" text, "window" bigint, "units" int)
WHERE c."key" = t."key" AND c."window" = t."window" AND c."used" >= t."units"`;

class Exceeded extends Error {
  constructor(readonly take: CounterTake) {
    super("budget exceeded");
  }
}

/**
 * Units a call may reserve beyond its own from a counter, to spend on later calls without a database
 * round trip. Only large budgets lease: what a replica holds unspent is at most 1/16 of the capacity
 * (returned at a graceful stop), while a small budget (and every destructive one) is taken exactly.
 */
export const leaseUnits = (take: Pick<CounterTake, "capacity" | "limit">): number =>
  take.capacity < 100 || take.limit.includes("maxDestructiveCalls") ? 0 : Math.min(64, Math.floor(take.capacity / 16));

/**
 * Units reserved in the database and not yet spent by this replica, per counter key, and the largest
 * capacity any of them was reserved under: they may be spent only while the budget is at least that.
 */
type Lease = { window: number; units: number; capacity: number; expiresAt: Date | null };

/** What one call took: units from this replica's leases (each with the lease it came from), and units reserved in the database. */
export type Spent = { readonly fromLeases: readonly [CounterTake, Lease][]; readonly reserved: readonly CounterTake[] };

const NOTHING_SPENT: Spent = { fromLeases: [], reserved: [] };

/** A call's budgets: the limit that refused it, or what it spent. */
export type Taken = { refused: CounterTake; spent?: never } | { refused: null; spent: Spent };

/**
 * Budget counters in the database, shared by every replica. A call takes its units from this replica's
 * leases when they cover it (no round trip); otherwise it reserves them, and a lease for the calls after
 * it, in one transaction whose guard no replica can pass beyond a counter's capacity: replicas never
 * overspend a budget together. A replica reserves one lease per counter at a time: the calls that find
 * the lease empty while it is being refilled wait for the refill and spend from it, so a burst does not
 * reserve one lease per call and leave most of them unspent when the budget runs out.
 */
export class BudgetService {
  #timer: NodeJS.Timeout | undefined;
  readonly #leases = new Map<string, Lease>();
  /** The reservation refilling a counter's lease, while one is in flight. */
  readonly #refills = new Map<string, Promise<void>>();

  /**
   * `keepAfterExpiryMs`: how long a token's counters outlive its expiry, the clock-skew leeway during which
   * the token still verifies (KEYWARD_CLOCK_SKEW_SECONDS): pruned at its expiry, a token whose budget was
   * spent would start afresh for that long.
   */
  constructor(
    private readonly prisma: PrismaClient,
    private readonly keepAfterExpiryMs: number,
  ) {}

  /**
   * Takes every counter or none: the limit that refused, if any, or what was taken and from where, for
   * `giveBack` should the call not be forwarded after all.
   */
  async take(takes: CounterTake[]): Promise<Taken> {
    if (takes.length === 0) return { refused: null, spent: NOTHING_SPENT };
    for (;;) {
      // What this replica's leases cover is taken from them at once, before any await, so that concurrent
      // calls cannot spend the same units; it is given back if the rest is refused or waited for.
      const covered: [CounterTake, Lease][] = [];
      const uncovered: CounterTake[] = [];
      // Leases reserved under a larger budget than the grant has now (the admin lowered it): never spent,
      // since their units would let calls through beyond the new capacity; they go back to the counter,
      // which then judges this call, and the next, by the calls made.
      const outgrown: [string, Lease][] = [];
      for (const t of takes) {
        const lease = this.#leases.get(t.key);
        if (lease && lease.capacity > t.capacity) {
          this.#leases.delete(t.key);
          if (lease.window === t.window && lease.units > 0) outgrown.push([t.key, lease]);
          uncovered.push(t);
        } else if (lease && lease.window === t.window && lease.units >= t.amount) {
          lease.units -= t.amount;
          covered.push([t, lease]);
        } else uncovered.push(t);
      }
      if (uncovered.length === 0) return { refused: null, spent: { fromLeases: covered, reserved: [] } };
      // Only into the lease they came from, while this replica still holds it. One replaced meanwhile (a new
      // minute's, or one reserved under a lowered budget) was reserved without them: spent from it, they would
      // go uncounted. One dropped meanwhile went back to its counter without them: they stay counted, unspent.
      const giveBack = () => {
        for (const [t, lease] of covered) if (this.#leases.get(t.key) === lease) lease.units += t.amount;
      };
      if (outgrown.length > 0) {
        giveBack();
        await this.#returnUnits(outgrown);
        continue;
      }
      const refills = uncovered.flatMap((t) => this.#refills.get(t.key) ?? []);
      if (refills.length > 0) {
        giveBack();
        // A refill the database refused on a counter this call needs refuses this call too (it came
        // while the counter was spent); otherwise the call tries its leases again.
        for (const outcome of await Promise.allSettled(refills)) {
          if (outcome.status === "fulfilled" || !(outcome.reason instanceof Exceeded)) continue;
          const refused = uncovered.find((t) => t.key === outcome.reason.take.key && t.window === outcome.reason.take.window);
          if (refused) return { refused };
        }
        continue;
      }
      try {
        await this.#reserveIntoLeases(uncovered);
        return { refused: null, spent: { fromLeases: covered, reserved: uncovered } };
      } catch (err) {
        giveBack();
        if (err instanceof Exceeded) return { refused: err.take };
        throw err;
      }
    }
  }

  /**
   * Gives back what a call took that was then not forwarded (its audit write failed, its upstream could
   * not be reached): a unit the agent was refused for, or that went nowhere, is not spent. A unit from a
   * lease this replica still holds goes back into it; every other one is uncounted in the database, in the
   * window it was counted in (a unit of a minute past is not given to the next one).
   */
  async giveBack(spent: Spent): Promise<void> {
    const uncount: { key: string; window: number; units: number }[] = [];
    for (const [t, lease] of spent.fromLeases) {
      if (this.#leases.get(t.key) === lease) lease.units += t.amount;
      else uncount.push({ key: t.key, window: lease.window, units: t.amount });
    }
    for (const t of spent.reserved) uncount.push({ key: t.key, window: t.window, units: t.amount });
    await this.#uncount(uncount);
  }

  /**
   * Reserves the takes' amounts, and the leases of the counters that lease, which this replica's later
   * calls then spend. While it runs, it is the refill of those counters' leases that other calls wait for.
   */
  #reserveIntoLeases(takes: CounterTake[]): Promise<void> {
    const reservation = this.#reserve(takes).then((granted) => {
      for (const t of takes) {
        const extra = granted.get(t.key)! - t.amount;
        const lease = this.#leases.get(t.key);
        if (lease && lease.window === t.window) {
          lease.units += extra;
          lease.capacity = Math.max(lease.capacity, t.capacity);
        } else if (extra > 0) this.#leases.set(t.key, { window: t.window, units: extra, capacity: t.capacity, expiresAt: t.expiresAt });
        else this.#leases.delete(t.key);
      }
    });
    // Small and destructive budgets are taken exactly, with no lease to wait for: their calls reserve concurrently.
    const refilled = takes.filter((t) => leaseUnits(t) > 0).map((t) => t.key);
    for (const key of refilled) this.#refills.set(key, reservation);
    const forget = () => {
      for (const key of refilled) if (this.#refills.get(key) === reservation) this.#refills.delete(key);
    };
    reservation.then(forget, forget);
    return reservation;
  }

  /**
   * Reserves each take's amount plus its lease in one transaction; a counter that cannot give the lease
   * is asked for the amount alone. Returns the units granted per key; throws Exceeded (rolled back) if
   * a counter cannot give even the amount.
   */
  async #reserve(takes: CounterTake[]): Promise<Map<string, number>> {
    const rows = (amounts: Map<string, number>) =>
      JSON.stringify(
        takes
          .filter((t) => amounts.has(t.key))
          .map((t) => ({ key: t.key, window: t.window, amount: amounts.get(t.key), capacity: t.capacity, expiresAt: t.expiresAt?.toISOString() ?? null })),
      );
    return this.prisma.$transaction(async (tx) => {
      /** Takes these amounts where the counters allow them; returns the keys that gave them. */
      const take = async (amounts: Map<string, number>) =>
        new Set((await tx.$queryRawUnsafe<{ key: string }[]>(TAKE_SQL, rows(amounts))).map((r) => r.key));
      const wanted = new Map(takes.map((t) => [t.key, t.amount + leaseUnits(t)]));
      const first = await take(wanted);
      const granted = new Map<string, number>();
      const exact = new Map<string, number>();
      for (const t of takes) {
        if (first.has(t.key)) granted.set(t.key, wanted.get(t.key)!);
        else if (wanted.get(t.key)! > t.amount) exact.set(t.key, t.amount);
        else throw new Exceeded(t);
      }
      if (exact.size > 0) {
        const second = await take(exact);
        for (const t of takes) {
          if (!exact.has(t.key)) continue;
          if (!second.has(t.key)) throw new Exceeded(t);
          granted.set(t.key, t.amount);
        }
      }
      return granted;
    });
  }

  /** Gives back the lifetime units this replica leased and did not spend (a window's lapse with it). */
  async #returnLeases(): Promise<void> {
    const unspent = [...this.#leases].filter(([, lease]) => lease.window === 0 && lease.units > 0);
    this.#leases.clear();
    await this.#returnUnits(unspent);
  }

  /** Gives leased units back to their counters (in the window they were reserved in: a newer one started afresh). */
  async #returnUnits(leases: [string, Lease][]): Promise<void> {
    await this.#uncount(leases.map(([key, lease]) => ({ key, window: lease.window, units: lease.units })));
  }

  /** Takes units off their counters, each only in the window it was counted in. */
  async #uncount(units: { key: string; window: number; units: number }[]): Promise<void> {
    if (units.length > 0) await this.prisma.$executeRawUnsafe(UNCOUNT_SQL, JSON.stringify(units));
  }

  /** Forgets the counters of expired tokens, and their leases. */
  async pruneExpired(now = new Date()): Promise<void> {
    const expiredBefore = new Date(now.getTime() - this.keepAfterExpiryMs);
    for (const [key, lease] of this.#leases) if (lease.expiresAt && lease.expiresAt < expiredBefore) this.#leases.delete(key);
    await this.prisma.budgetCounter.deleteMany({ where: { expiresAt: { lt: expiredBefore } } });
  }

  start(intervalMs: number, onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => this.pruneExpired().catch(onError), intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#returnLeases();
  }
}
