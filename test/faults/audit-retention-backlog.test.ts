import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveCheckpointKey, type CheckpointKeys } from "../../src/audit/chain.js";
import { pruneAudit } from "../../src/audit/retention.js";
import { verifyAuditChain } from "../../src/audit/verify.js";
import { appendOldEvents } from "../helpers/audit.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { title } from "../security/cases.js";

const DAY = 86_400_000;

/**
 * A first prune of a long log deleted it all in one transaction, and Prisma ends an interactive
 * transaction after 5 s: with 600,000 events to go it was rolled back, every hour, for good. Pruning goes
 * in chunks, each behind its own checkpoint; here chunks of 1,000 over 2,500 events stand for 20,000 over
 * hundreds of thousands.
 */
describe("faults: a long audit log's first prune", () => {
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

  it(title("FLT-29"), async () => {
    const { prisma } = broker.keyward.db;
    for (let i = 0; i < 5; i++) await appendOldEvents(prisma, 500, 40);
    await appendOldEvents(prisma, 3, 1);
    const olderThan = new Date(Date.now() - 30 * DAY);
    const pruned = await pruneAudit(prisma, keys, { olderThan, keepUnshipped: false, actor: "retention", chunkEvents: 1000 });
    expect(pruned.refused).toBeNull();
    expect(pruned.prunedEvents).toBeGreaterThanOrEqual(2500);
    const checkpoints = await prisma.auditCheckpoint.findMany({ orderBy: { id: "asc" } });
    // Three chunks, each a checkpoint chained to the one before, none covering more than its chunk.
    expect(checkpoints.length).toBeGreaterThanOrEqual(3);
    for (const [i, c] of checkpoints.entries()) {
      expect(c.prunedEvents).toBeLessThanOrEqual(1000);
      if (i > 0) expect(c.prevHash).toBe(checkpoints[i - 1]!.hash);
    }
    expect(pruned.checkpointId).toBe(checkpoints.at(-1)!.id);
    expect(await prisma.auditEvent.count({ where: { at: { lt: olderThan } } })).toBe(0);
    expect(await verifyAuditChain(prisma, keys)).toMatchObject({ ok: true, firstBroken: null, checkpoint: { id: pruned.checkpointId } });
  }, 60_000);
});
