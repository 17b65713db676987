import { randomUUID } from "node:crypto";
import { APPEND_ONE } from "../../src/audit/audit.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contentHash, deriveCheckpointKey, type CheckpointKeys } from "../../src/audit/chain.js";
import { pruneAudit } from "../../src/audit/retention.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { editAuditLogAsSuperuser } from "../helpers/audit.js";
import { createAgent } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Event = { id: string; at: string; reason: string | null; hash: string };

const DAY = 86_400_000;

/**
 * KEYWARD_AUDIT_RETENTION_DAYS: a broker started with it prunes the events older than that (at start,
 * then hourly: src/audit/retention.ts), behind a signed checkpoint, so the rest of the chain still
 * verifies; and it refuses to prune a chain that does not verify.
 */
const exportAll = async (b: TestBroker): Promise<Event[]> =>
  (await b.admin("get", "/v1/audit/export")).text.trim().split("\n").map((line) => JSON.parse(line) as Event);

/**
 * The history a long-running broker would have: events stamped in the past, written as the application
 * writes them (its content hash; keyward_audit_append chains them).
 */
async function writeOldEvents(broker: TestBroker, daysAgo: number[]): Promise<void> {
  for (const days of daysAgo) {
    const content = { at: new Date(Date.now() - days * DAY), actor: "admin-key:legacy", kind: "admin.change", details: { daysAgo: days } };
    const row = { ...content, eventId: randomUUID(), contentHash: contentHash(content), seq: 0 };
    await broker.keyward.db.prisma.$executeRawUnsafe(APPEND_ONE, JSON.stringify([row]));
  }
}

describe("audit retention", () => {
  let store: Store;
  let broker: TestBroker | undefined;
  /** The seeded log, oldest first: three events older than 30 days, then two younger. */
  let seeded: Event[];

  const verify = async (b: TestBroker) => (await b.admin("get", "/v1/audit/verify")).body;

  beforeAll(async () => {
    store = newStore();
    // A broker without retention writes the history.
    const seeder = await startBroker(store);
    try {
      await writeOldEvents(seeder, [45, 40, 31, 29]);
      await createAgent(seeder, "recent"); // stamped now
      seeded = await exportAll(seeder);
      expect(seeded).toHaveLength(5);
      expect(await verify(seeder)).toMatchObject({ ok: true, checkedEvents: 5 });
      // Someone edits an old event behind the broker's back (restored by the first test).
      await editAuditLogAsSuperuser(seeder, `UPDATE "AuditEvent" SET reason = 'edited' WHERE id = $1`, [seeded[1]!.id]);
    } finally {
      await seeder.close();
    }
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  it("refuses to prune a chain that does not verify, and says so", async () => {
    const victim = seeded[1]!;
    broker = await startBroker(store, { KEYWARD_AUDIT_RETENTION_DAYS: "30" });
    await expect.poll(() => broker!.logs.some((l) => l.includes("refusing to prune")), { timeout: 10_000 }).toBe(true);
    const refusal = JSON.parse(broker.logs.find((l) => l.includes("refusing to prune"))!);
    expect(refusal.firstBroken).toEqual({ at: "event", id: victim.id, reason: "event content does not match its hash" });
    expect((await exportAll(broker)).map((e) => e.id)).toEqual(seeded.map((e) => e.id)); // the evidence is kept
    expect(await broker.keyward.db.prisma.auditCheckpoint.count()).toBe(0);
    await editAuditLogAsSuperuser(broker, `UPDATE "AuditEvent" SET reason = $2 WHERE id = $1`, [victim.id, victim.reason]);
    await broker.close();
    broker = undefined;
  }, 60_000);

  it("a broker started with KEYWARD_AUDIT_RETENTION_DAYS prunes the older events behind a signed checkpoint; the rest verifies", async () => {
    broker = await startBroker(store, { KEYWARD_AUDIT_RETENTION_DAYS: "30" });
    const b = broker;
    await expect.poll(async () => (await verify(b)).checkpoint, { timeout: 10_000 }).not.toBeNull();
    const [, , lastOld, ...kept] = seeded;

    const after = await verify(b);
    expect(after).toMatchObject({ ok: true, firstBroken: null, checkedEvents: 2, checkpoint: { throughId: lastOld!.id, throughHash: lastOld!.hash } });
    expect((await exportAll(b)).map((e) => e.id)).toEqual(kept.map((e) => e.id)); // the 29-day-old event stays
    const [checkpoint] = await b.keyward.db.prisma.auditCheckpoint.findMany();
    expect(checkpoint).toMatchObject({ actor: "retention", prunedEvents: 3, throughId: BigInt(lastOld!.id) });
    const logged = b.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "pruned audit events");
    expect(logged).toMatchObject({ prunedEvents: 3, checkpointId: checkpoint!.id, refused: null });

    // The chain goes on from the kept events: new events link to them and still verify.
    await createAgent(b, "after-pruning");
    expect(await verify(b)).toMatchObject({ ok: true, checkedEvents: 3 });
  }, 60_000);
});

describe("audit retention with a webhook sink", () => {
  it("keeps the events the sink has not accepted yet, and prunes them once it has", async () => {
    let sinkUp = false;
    const sink = await startUpstream((_req, res) => void res.writeHead(sinkUp ? 204 : 503).end());
    const store = newStore();
    const broker = await startBroker(store, { KEYWARD_AUDIT_WEBHOOK_URL: `${sink.url}/ingest` });
    try {
      const { prisma } = broker.keyward.db;
      await writeOldEvents(broker, [40, 35]);
      const keys: CheckpointKeys = [deriveCheckpointKey(Buffer.from(store.masterKey, "base64"))];
      const prune = () => pruneAudit(prisma, keys, { olderThan: new Date(Date.now() - 30 * DAY), keepUnshipped: true, actor: "test" });
      expect(await prune()).toMatchObject({ refused: null, prunedEvents: 0 }); // nothing delivered yet

      sinkUp = true;
      const newest = (await exportAll(broker)).at(-1)!;
      await expect.poll(async () => (await prisma.auditSinkCursor.findUniqueOrThrow({ where: { id: 1 } })).lastId, { timeout: 15_000 }).toBeGreaterThanOrEqual(BigInt(newest.id));
      expect(await prune()).toMatchObject({ refused: null, prunedEvents: 2 });
    } finally {
      await broker.close();
      await sink.close();
      await store.drop();
    }
  }, 60_000);
});
