import type { PrismaClient } from "@prisma/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveCheckpointKey, type CheckpointKeys } from "../../src/audit/chain.js";
import { pruneAudit } from "../../src/audit/retention.js";
import { verifyAuditChain } from "../../src/audit/verify.js";
import { appendOldEvents, editAuditLogAsSuperuser } from "../helpers/audit.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { title } from "../security/cases.js";

const DAY = 86_400_000;

/**
 * The prisma client a verification reads through, its reads of events held until `release`: the walk has
 * read the checkpoints and the head, and what happens before it reads the events is up to the test.
 */
function heldAtEvents(prisma: PrismaClient): { client: PrismaClient; reached: Promise<void>; release: () => void } {
  let release!: () => void;
  let reached!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const atGate = new Promise<void>((r) => (reached = r));
  const auditEvent = new Proxy(prisma.auditEvent, {
    get: (target, prop, receiver) =>
      prop === "findMany"
        ? async (...args: unknown[]) => {
            reached();
            await gate;
            return (target.findMany as (...a: unknown[]) => unknown)(...args);
          }
        : Reflect.get(target, prop, receiver),
  });
  const client = new Proxy(prisma, { get: (target, prop, receiver) => (prop === "auditEvent" ? auditEvent : Reflect.get(target, prop, receiver)) });
  return { client, reached: atGate, release };
}

describe(title("FLT-28"), () => {
  let store: Store;
  let broker: TestBroker;
  let keys: CheckpointKeys;
  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    keys = [deriveCheckpointKey(Buffer.from(store.masterKey, "base64"))];
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  for (const round of ["with no checkpoint yet", "after a first checkpoint"]) {
    it(`a verification that read the checkpoints before another replica's prune committed still passes (${round})`, async () => {
      const { prisma } = broker.keyward.db;
      await appendOldEvents(prisma, 50, 40);
      const everything = { olderThan: new Date(Date.now() + DAY), keepUnshipped: false, actor: "test" };
      const held = heldAtEvents(prisma);
      const verifying = verifyAuditChain(held.client, keys);
      await held.reached;
      const pruned = await pruneAudit(prisma, keys, everything);
      expect(pruned).toMatchObject({ refused: null, prunedEvents: 50 });
      held.release();
      expect(await verifying).toMatchObject({ ok: true, firstBroken: null, checkpoint: { id: pruned.checkpointId } });

      // The same with the prune's own check: a replica whose check straddled another's prune still prunes next time.
      await appendOldEvents(prisma, 5, 40);
      const heldPrune = heldAtEvents(prisma);
      const pruning = pruneAudit(heldPrune.client, keys, everything);
      await heldPrune.reached;
      const other = await pruneAudit(prisma, keys, everything);
      expect(other).toMatchObject({ refused: null, prunedEvents: 5 });
      heldPrune.release();
      expect(await pruning).toMatchObject({ refused: null, prunedEvents: 0 }); // the other replica did it
    }, 60_000);
  }

  // A first prune of a long log deleted it all in one transaction, which Prisma ends after 5 s: 600,000
  // events were rolled back every hour, for good. Chunks of 1,000 over 2,500 events stand for 20,000 over
  // hundreds of thousands.
  it(title("FLT-29"), async () => {
    const { prisma } = broker.keyward.db;
    const earlier = await prisma.auditCheckpoint.count();
    for (let i = 0; i < 5; i++) await appendOldEvents(prisma, 500, 40);
    await appendOldEvents(prisma, 3, 1);
    const olderThan = new Date(Date.now() - 30 * DAY);
    const pruned = await pruneAudit(prisma, keys, { olderThan, keepUnshipped: false, actor: "retention", chunkEvents: 1000 });
    expect(pruned.refused).toBeNull();
    expect(pruned.prunedEvents).toBeGreaterThanOrEqual(2500);
    const checkpoints = await prisma.auditCheckpoint.findMany({ orderBy: { id: "asc" }, skip: earlier - 1 });
    // Three chunks, each a checkpoint chained to the one before, none covering more than its chunk.
    expect(checkpoints.length - 1).toBeGreaterThanOrEqual(3);
    for (const [i, c] of checkpoints.entries()) {
      if (i === 0) continue; // the one before this prune, which the first chunk's chains to
      expect(c.prunedEvents).toBeLessThanOrEqual(1000);
      expect(c.prevHash).toBe(checkpoints[i - 1]!.hash);
    }
    expect(pruned.checkpointId).toBe(checkpoints.at(-1)!.id);
    expect(await prisma.auditEvent.count({ where: { at: { lt: olderThan } } })).toBe(0);
    expect(await verifyAuditChain(prisma, keys)).toMatchObject({ ok: true, firstBroken: null, checkpoint: { id: pruned.checkpointId } });
  }, 60_000);

  it("an event deleted behind the checkpoints' back is still reported, walked once more at most", async () => {
    const { prisma } = broker.keyward.db;
    await appendOldEvents(prisma, 5, 1);
    const events = await prisma.auditEvent.findMany({ orderBy: { id: "desc" }, take: 3, select: { id: true } });
    await editAuditLogAsSuperuser(broker, `DELETE FROM "AuditEvent" WHERE id = $1`, [events[1]!.id.toString()]);
    expect(await verifyAuditChain(prisma, keys)).toMatchObject({ ok: false, firstBroken: { at: "event", id: events[1]!.id.toString(), reason: "event is missing" } });
  }, 60_000);
});
