import { describe, expect, it } from "vitest";
import type { FastifyBaseLogger } from "fastify";
import type { Database } from "../../../src/db/database.js";
import { pingPayloadOf } from "../../../src/change-feed/changes.js";
import { ChangeFeed } from "../../../src/change-feed/feed.js";
import { RevocationService } from "../../../src/revocation/service.js";
import type { AgentToken } from "../../../src/tokens/claims.js";

type Row = { id: string; selector: string; value: string; createdAt: Date; expiresAt: Date | null };

/** A database whose loads the test releases by hand, and whose notifications the test delivers. */
function fakeDatabase() {
  const pending: { rows: Row[]; release: () => void; where: Record<string, unknown> }[] = [];
  let deliver: (payload: string) => void = () => {};
  let lose: (err: Error) => void = () => {};
  const db = {
    schema: "public",
    prisma: {
      revocation: {
        findMany: ({ where }: { where: Record<string, unknown> }) =>
          new Promise<Row[]>((resolve) => {
            const load = { rows: [] as Row[], release: () => resolve(load.rows), where };
            pending.push(load);
          }),
      },
    },
    listen: async (_channel: string, onNotify: (p: string) => void, onLost: (e: Error) => void) => {
      deliver = onNotify;
      lose = onLost;
      return { close: async () => {} };
    },
    notify: async () => {},
  } as unknown as Database;
  return { db, pending, deliver: (p: string) => deliver(p), lose: (e: Error) => lose(e) };
}

const silent = { warn() {}, info() {}, error() {} } as unknown as FastifyBaseLogger;
const T = 1_900_000_000_000;
const token = { jti: "j", agentId: "agent-1", grantId: "g", upstream: "api", issuedAt: T / 1000 - 10 } as AgentToken;
const change = (id: string, selector: string, value: string) =>
  JSON.stringify({ schema: "public", id, selector, value, createdAtMs: T, expiresAtMs: null, lifted: false });
const flush = () => new Promise((r) => setImmediate(r));

/** The revocation state on a real change feed, over the fake database; the feed starts loading at once. */
function revocationsOn(fake: ReturnType<typeof fakeDatabase>, options: { resyncMs: number; maxStalenessMs: number; now: () => number }) {
  const feed = new ChangeFeed(fake.db, { ...options, replicaId: "me", log: silent });
  const service = new RevocationService(fake.db.prisma, feed, { resyncMs: options.resyncMs, keepAfterExpiryMs: 5000, now: options.now });
  return { feed, service, started: feed.start() };
}

/** Stops the feed; later syncs wait on the fake database, so their loads are released until it has stopped. */
async function stopReleasingLoads(feed: ChangeFeed, fake: ReturnType<typeof fakeDatabase>): Promise<void> {
  let stopped = false;
  const stopping = feed.stop().then(() => (stopped = true));
  while (!stopped) {
    fake.pending.forEach((load) => load.release());
    await flush();
  }
  await stopping;
}

describe("RevocationService", () => {
  it("a change announced while a full load runs survives the load's older snapshot", async () => {
    const fake = fakeDatabase();
    const { feed, service, started } = revocationsOn(fake, { resyncMs: 60_000, maxStalenessMs: 5000, now: () => T });
    await flush();
    fake.deliver(change("r1", "agent", "agent-1")); // committed after the snapshot was taken
    fake.pending[0]!.release(); // the snapshot: no revocations
    await started;
    expect(() => service.assertNotRevoked(token)).toThrow(/agent's tokens revoked/);
    await feed.stop();
  });

  it("is current after its first load, stays current on its own echoed pings, and goes stale without them", async () => {
    let now = T;
    const fake = fakeDatabase();
    const { feed, service, started } = revocationsOn(fake, { resyncMs: 60_000, maxStalenessMs: 5000, now: () => now });
    await flush();
    fake.pending[0]!.release();
    await started;
    expect(service.isCurrent()).toBe(true);

    now = T + 4000;
    fake.deliver(pingPayloadOf("public", "me", now));
    fake.deliver(pingPayloadOf("public", "someone-else", now + 1000)); // another replica's ping proves nothing here
    fake.deliver(pingPayloadOf("other_schema", "me", now + 1000));
    now = T + 9000;
    expect(service.isCurrent()).toBe(true);
    now = T + 9001;
    expect(service.isCurrent()).toBe(false);
    expect(() => service.assertNotRevoked(token)).toThrow(/not current/);
    await feed.stop();
  });

  it("after losing its connection, pings count again only once a reload that followed the new LISTEN is done", async () => {
    let now = T;
    const fake = fakeDatabase();
    const { feed, service, started } = revocationsOn(fake, { resyncMs: 60_000, maxStalenessMs: 100, now: () => now });
    await flush();
    fake.pending[0]!.release();
    await started;
    fake.lose(new Error("terminated"));
    await new Promise((r) => setTimeout(r, 60)); // the recovery re-listens and starts a reload
    now = T + 50;
    fake.deliver(pingPayloadOf("public", "me", now));
    now = T + 150;
    expect(service.isCurrent()).toBe(false); // the echo came before the reload finished
    fake.pending.at(-1)!.release();
    await flush();
    fake.deliver(pingPayloadOf("public", "me", now));
    expect(service.isCurrent()).toBe(true);
    await feed.stop();
  });

  it("reads only recent revocations between full reloads, and a lift announced meanwhile wins over the row it read", async () => {
    let now = T;
    const fake = fakeDatabase();
    const { feed, service, started } = revocationsOn(fake, { resyncMs: 20, maxStalenessMs: 5000, now: () => now });
    await flush();
    expect(fake.pending[0]!.where.createdAt).toBeUndefined(); // the first load is a full one
    fake.pending[0]!.release();
    await started;
    now = T + 1000; // a sync is due, a full reload is not
    await new Promise((r) => setTimeout(r, 40));
    const sync = fake.pending[1]!;
    expect(sync.where.createdAt).toEqual({ gt: new Date(T - 30_000) });
    sync.rows.push({ id: "k1", selector: "kill_switch", value: "*", createdAt: new Date(T), expiresAt: null });
    sync.rows.push({ id: "r2", selector: "agent", value: "agent-1", createdAt: new Date(T), expiresAt: null });
    fake.deliver(JSON.stringify({ schema: "public", id: "k1", selector: "kill_switch", value: "*", createdAtMs: T, expiresAtMs: null, lifted: true }));
    sync.release();
    await flush();
    expect(() => service.assertNotRevoked(token)).toThrow(/agent's tokens revoked/);
    await stopReleasingLoads(feed, fake);
  });

  it("a jti revocation stays in force for the verification leeway after its token's expiry", async () => {
    let now = T;
    const fake = fakeDatabase();
    const { feed, service, started } = revocationsOn(fake, { resyncMs: 20, maxStalenessMs: 60_000, now: () => now });
    await flush();
    fake.pending[0]!.release();
    await started;
    fake.deliver(JSON.stringify({ schema: "public", id: "r1", selector: "jti", value: "j", createdAtMs: T, expiresAtMs: T + 1000, lifted: false }));
    const syncAt = async (ms: number) => {
      now = ms;
      const before = fake.pending.length;
      while (fake.pending.length === before) await new Promise((r) => setTimeout(r, 5));
      const sync = fake.pending.at(-1)!;
      sync.release();
      await flush();
      return sync;
    };
    // 2 s past the token's expiry: it still verifies (5 s leeway), so its revocation holds, and syncs read
    // the revocations of tokens that expired up to 5 s ago.
    const sync = await syncAt(T + 3000);
    expect(sync.where.OR).toContainEqual({ expiresAt: { gt: new Date(T + 3000 - 5000) } });
    expect(() => service.assertNotRevoked(token)).toThrow(/revoked/);
    // Past the leeway the token no longer verifies: the revocation can go.
    await syncAt(T + 6500);
    expect(() => service.assertNotRevoked(token)).not.toThrow();
    await stopReleasingLoads(feed, fake);
  });

  it("a revocation of a kind it does not know (a newer replica's) leaves the state unvouched for until a reload succeeds", async () => {
    let now = T;
    const fake = fakeDatabase();
    const { feed, service, started } = revocationsOn(fake, { resyncMs: 60_000, maxStalenessMs: 5000, now: () => now });
    await flush();
    fake.pending[0]!.release();
    await started;
    fake.deliver(change("r9", "phase_of_moon", "full"));
    await flush();
    const reload = fake.pending.at(-1)!;
    expect(fake.pending).toHaveLength(2); // the feed reloads at once
    now = T + 1000;
    fake.deliver(pingPayloadOf("public", "me", now));
    now = T + 5001;
    expect(service.isCurrent()).toBe(false); // the echo proves nothing until the reload is done
    reload.release();
    await flush();
    fake.deliver(pingPayloadOf("public", "me", now));
    expect(service.isCurrent()).toBe(true);
    await feed.stop();
  });
});
