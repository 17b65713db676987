import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { BudgetService, type CounterTake } from "../../src/budgets/budgets.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

/** Budgets under concurrent load: exactly the budget is spent, however many calls race for it. */
describe("budgets", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Agent;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "budget-secret-" + "b".repeat(20) });
    agent = await createAgent(broker, "busy-agent");
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const grant = (name: string, budgets: object, methods = ["GET", "DELETE"]) =>
    createGrant(broker, { name, agents: [agent.id], upstream: "api", methods, paths: ["/v1/**"], budgets });

  /** Fires every call at once; returns the statuses and the 429 responses. */
  async function burst(calls: (() => PromiseLike<{ status: number; headers: Record<string, string>; body: { error?: { reason?: string } } }>)[]) {
    const responses = await Promise.all(calls.map((call) => call()));
    return { statuses: responses.map((r) => r.status), refused: responses.filter((r) => r.status === 429) };
  }
  const call = (target: TestBroker, method: "get" | "delete", path: string, token: string) => () =>
    target.http()[method](path).set("authorization", `Bearer ${token}`);
  const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

  it("a token's total calls: 30 concurrent calls, a budget of 5", async () => {
    await grant("five-calls", { perToken: { maxCalls: 5 } });
    const token = await tokenFor(broker, agent, { grant: "five-calls" });
    const before = upstream.received.length;
    const { statuses, refused } = await burst(Array.from({ length: 30 }, (_, i) => call(broker, "get", `/proxy/api/v1/items/${i}`, token)));
    expect(count(statuses, 200)).toBe(5);
    expect(count(statuses, 429)).toBe(25);
    expect(upstream.received.length - before).toBe(5);
    // A lifetime budget never refills: no Retry-After to wait for.
    expect(refused[0]!.headers["retry-after"]).toBeUndefined();
    expect(refused[0]!.body.error?.reason).toMatch(/perToken.maxCalls \(5\) is spent/);

    // A new token has a budget of its own.
    const fresh = await tokenFor(broker, agent, { grant: "five-calls" });
    await broker.http().get("/proxy/api/v1/items/x").set("authorization", `Bearer ${fresh}`).expect(200);
  });

  it("a grant's destructive calls, shared by tokens: 20 concurrent DELETEs from two tokens, a budget of 3", async () => {
    await grant("three-deletes", { perGrant: { maxDestructiveCalls: 3 } });
    const tokens = [await tokenFor(broker, agent, { grant: "three-deletes" }), await tokenFor(broker, agent, { grant: "three-deletes" })];
    const { statuses } = await burst(Array.from({ length: 20 }, (_, i) => call(broker, "delete", `/proxy/api/v1/volumes/${i}`, tokens[i % 2]!)));
    expect(count(statuses, 200)).toBe(3);
    expect(count(statuses, 429)).toBe(17);
    // Reading is not destructive and stays allowed.
    await broker.http().get("/proxy/api/v1/volumes").set("authorization", `Bearer ${tokens[0]}`).expect(200);
  });

  it("requests per minute: a burst of 12 against 4, with Retry-After until the minute ends", async () => {
    await grant("four-a-minute", { perToken: { requestsPerMinute: 4 } });
    const token = await tokenFor(broker, agent, { grant: "four-a-minute" });
    // Keep the burst inside one minute.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((resolve) => setTimeout(resolve, 60_500 - intoMinute));
    const { statuses, refused } = await burst(Array.from({ length: 12 }, () => call(broker, "get", "/proxy/api/v1/x", token)));
    expect(count(statuses, 200)).toBe(4);
    expect(count(statuses, 429)).toBe(8);
    const retryAfter = Number(refused[0]!.headers["retry-after"]);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  }, 90_000);

  it("calls the policy denies take nothing from the budget", async () => {
    await grant("two-calls", { perToken: { maxCalls: 2 } });
    const token = await tokenFor(broker, agent, { grant: "two-calls" });
    for (let i = 0; i < 5; i++) await broker.http().get("/proxy/api/v2/outside").set("authorization", `Bearer ${token}`).expect(403);
    await broker.http().get("/proxy/api/v1/a").set("authorization", `Bearer ${token}`).expect(200);
    await broker.http().get("/proxy/api/v1/b").set("authorization", `Bearer ${token}`).expect(200);
    await broker.http().get("/proxy/api/v1/c").set("authorization", `Bearer ${token}`).expect(429);
  });

  it("a refusal is audited as a deny with status 429", async () => {
    const res = await broker.admin("get", "/v1/audit?kind=proxy&decision=deny&limit=200");
    const budgetDenials = res.body.events.filter((e: { status: number }) => e.status === 429);
    expect(budgetDenials.length).toBeGreaterThan(0);
    expect(budgetDenials[0]).toMatchObject({ reason: "budget_exceeded", details: { reason: expect.stringMatching(/is spent/) } });
  });

  it("two replicas on one database share a grant's budget exactly", async () => {
    const replica = await startBroker(store);
    try {
      await grant("ten-calls", { perGrant: { maxCalls: 10 } });
      const token = await tokenFor(broker, agent, { grant: "ten-calls" });
      const calls = Array.from({ length: 40 }, (_, i) => call(i % 2 ? broker : replica, "get", `/proxy/api/v1/r/${i}`, token));
      const { statuses } = await burst(calls);
      expect(count(statuses, 200)).toBe(10);
      expect(count(statuses, 429)).toBe(30);
    } finally {
      await replica.close();
    }
  });

  it("a large budget is spent from leases without a database round trip per call; replicas never overspend it together, and a stop gives the rest back", async () => {
    const used = async (grantId: string) =>
      (await broker.keyward.db.prisma.budgetCounter.findUnique({ where: { key: `grant:${grantId}:calls` } }))?.used ?? 0;
    const leased = await grant("large", { perGrant: { maxCalls: 1600 } });
    const token = await tokenFor(broker, agent, { grant: "large" });
    // The first call reserves its unit and a lease of 1600/16 capped at 64; the next nine spend the lease.
    for (let i = 0; i < 10; i++) expect((await call(broker, "get", `/proxy/api/v1/lease/${i}`, token)())).toMatchObject({ status: 200 });
    expect(await used(leased.id)).toBe(65);

    // Two replicas racing for a budget of 200: exactly what the database granted them is spent, never more.
    let replica: TestBroker | null = await startBroker(store);
    try {
      const raced = await grant("raced", { perGrant: { maxCalls: 200 } });
      const racedToken = await tokenFor(broker, agent, { grant: "raced" });
      const { statuses } = await burst(Array.from({ length: 300 }, (_, i) => call(i % 2 ? broker : replica!, "get", `/proxy/api/v1/race/${i}`, racedToken)));
      expect(count(statuses, 200) + count(statuses, 429)).toBe(300);
      expect(count(statuses, 200)).toBeLessThanOrEqual(200);
      // At most one lease (200/16 = 12 units) per replica can be left unspent.
      expect(count(statuses, 200)).toBeGreaterThanOrEqual(200 - 2 * 12);
      expect(await used(raced.id)).toBe(200);
      // A graceful stop returns the replica's unspent lifetime units.
      await replica.close();
      replica = null;
      expect(await used(raced.id)).toBeLessThanOrEqual(200);
    } finally {
      await replica?.close();
    }
  });

  describe("leases, on one replica's budget service", () => {
    const lifetime = (key: string, capacity: number): CounterTake => ({
      key,
      limit: "perGrant.maxCalls",
      window: 0,
      amount: 1,
      capacity,
      expiresAt: null,
      retryAfterSeconds: null,
    });
    /** A budget service on the broker's database that counts its reservations (one transaction each). */
    const countingService = () => {
      const prisma = broker.keyward.db.prisma;
      const counted = { reservations: 0 };
      const service = new BudgetService(
        new Proxy(prisma, {
          get(target, property, receiver) {
            if (property !== "$transaction") return Reflect.get(target, property, receiver);
            return (...args: Parameters<typeof prisma.$transaction>) => {
              counted.reservations++;
              return (target.$transaction as (...a: unknown[]) => unknown)(...args);
            };
          },
        }),
        5000,
      );
      return { service, counted };
    };
    const usedOf = async (key: string) => (await broker.keyward.db.prisma.budgetCounter.findUnique({ where: { key } }))?.used ?? 0;

    it("a token's spent counter outlives its expiry by the clock-skew leeway, while the token still verifies", async () => {
      const { service } = countingService();
      const now = new Date();
      // A per-token budget of one call, its token expired 2 s ago: within the 5 s leeway it still verifies.
      const take: CounterTake = { ...lifetime("token:leeway-test:calls", 1), limit: "perToken.maxCalls", expiresAt: new Date(now.getTime() - 2000) };
      expect((await service.take([take])).refused).toBeNull();
      await service.pruneExpired(now);
      expect((await service.take([take])).refused).toMatchObject({ limit: "perToken.maxCalls" });
      // Past the leeway the token no longer verifies: its counter can go.
      await service.pruneExpired(new Date(now.getTime() + 3500));
      expect(await usedOf(take.key)).toBe(0);
      await service.stop();
    });

    it("a burst waits for one lease refill at a time instead of reserving a lease per call", async () => {
      const { service, counted } = countingService();
      const key = "grant:burst-test:calls";
      // Capacity 1,600 leases 64 units: 150 concurrent calls need 3 reservations (65 + 65 + 65 units).
      const refusals = await Promise.all(Array.from({ length: 150 }, () => service.take([lifetime(key, 1600)]).then((taken) => taken.refused)));
      expect(refusals.filter((r) => r !== null)).toEqual([]);
      expect(counted.reservations).toBe(3);
      expect(await usedOf(key)).toBe(195);
      await service.stop();
      expect(await usedOf(key)).toBe(150);
    });

    it("two replicas racing a budget to its end spend all of it but what their last leases hold", async () => {
      const key = "grant:race-test:calls";
      const replicas = [countingService(), countingService()];
      const refusals = await Promise.all(Array.from({ length: 300 }, (_, i) => replicas[i % 2]!.service.take([lifetime(key, 200)]).then((taken) => taken.refused)));
      const spent = refusals.filter((r) => r === null).length;
      expect(await usedOf(key)).toBe(200);
      // A lease is 200/16 = 12 units: at most one per replica is left when the calls run out.
      expect(spent).toBeGreaterThanOrEqual(200 - 2 * 12);
      for (const refused of refusals.filter((r) => r !== null)) expect(refused).toMatchObject({ key, limit: "perGrant.maxCalls" });
      // Calls that waited on a refill the database refused share its refusal: no round trip each.
      for (const { counted } of replicas) expect(counted.reservations).toBeLessThan(60);
      for (const { service } of replicas) await service.stop();
      expect(await usedOf(key)).toBe(spent);
    });
  });
});
