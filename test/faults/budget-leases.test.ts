import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { BudgetService, type CounterTake } from "../../src/budgets/budgets.js";
import { title } from "../security/cases.js";

/**
 * A call whose units came partly from this replica's leases and partly from a reservation the database
 * refused gives the leased units back. Meanwhile another call may have replaced or dropped the lease
 * (the admin lowered the budget, or a new minute began): the units must not land in a lease they were
 * not reserved for, nor the call fail on a lease that is gone.
 */
describe("faults: a budget reservation refused while the leases it drew on changed", () => {
  let store: Store;
  let broker: TestBroker;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  const take = (key: string, capacity: number, window = 0): CounterTake => ({
    key,
    limit: key.endsWith(":rpm") ? "perGrant.requestsPerMinute" : "perToken.maxCalls",
    window,
    amount: 1,
    capacity,
    expiresAt: null,
    retryAfterSeconds: window === 0 ? null : 60,
  });

  /** A budget service whose next reservation waits until `release()` is called. */
  const gatedService = () => {
    const prisma = broker.keyward.db.prisma;
    let armed: Promise<void> | null = null;
    let release = () => {};
    const service = new BudgetService(
      new Proxy(prisma, {
        get(target, property, receiver) {
          if (property !== "$transaction") return Reflect.get(target, property, receiver);
          return async (...args: Parameters<typeof prisma.$transaction>) => {
            const gate = armed;
            armed = null;
            if (gate) await gate;
            return (target.$transaction as (...a: unknown[]) => unknown)(...args);
          };
        },
      }),
      5000,
    );
    const arm = () => {
      armed = new Promise<void>((resolve) => (release = resolve));
    };
    return { service, arm, release: () => release() };
  };

  it(`${title("FLT-42")}: the grant's budget lowered meanwhile`, async () => {
    const { service, arm, release } = gatedService();
    const grant = "grant:flt42-lowered:calls";
    const spentToken = "token:flt42-lowered:calls";
    expect((await service.take([take(grant, 1600)])).refused).toBeNull(); // leases 64 units of the grant's budget
    expect((await service.take([take(spentToken, 1)])).refused).toBeNull(); // the token's one call
    arm();
    // One unit from the grant's lease, the token's counter from the database: refused, once released.
    const refused = service.take([take(grant, 1600), take(spentToken, 1)]).then((taken) => taken.refused);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Meanwhile the grant's budget is lowered to 50: the next call gives the lease back, and a budget
    // that small leases nothing, so this replica holds no lease of it.
    expect((await service.take([take(grant, 50)])).refused).toBeNull();
    release();
    expect(await refused).toMatchObject({ key: spentToken, limit: "perToken.maxCalls", capacity: 1 });
    await service.stop();
  });

  it(`${title("FLT-42")}: a new minute began meanwhile`, async () => {
    const { service, arm, release } = gatedService();
    const rpm = "grant:flt42-minute:rpm";
    const spentToken = "token:flt42-minute:calls";
    // 100 a minute leases 6 units; minute 1 has the call and its lease, 7 in all.
    expect((await service.take([take(rpm, 100, 1)])).refused).toBeNull();
    expect((await service.take([take(spentToken, 1)])).refused).toBeNull();
    arm();
    const refused = service.take([take(rpm, 100, 1), take(spentToken, 1)]).then((taken) => taken.refused);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Minute 2 starts: a call reserves its unit and a lease of 6 in it.
    expect((await service.take([take(rpm, 100, 2)])).refused).toBeNull();
    release();
    expect(await refused).toMatchObject({ key: spentToken });
    // Minute 2's counter says 7 reserved: Y's call and its lease of 6. Minute 1's unit is not among them:
    // six more calls spend the lease, and the seventh is counted in the database.
    const used = async () => (await broker.keyward.db.prisma.budgetCounter.findUniqueOrThrow({ where: { key: rpm } })).used;
    expect(await used()).toBe(7);
    for (let i = 0; i < 6; i++) expect((await service.take([take(rpm, 100, 2)])).refused).toBeNull();
    expect(await used()).toBe(7);
    expect((await service.take([take(rpm, 100, 2)])).refused).toBeNull();
    expect(await used()).toBeGreaterThan(7);
    await service.stop();
  });
});
