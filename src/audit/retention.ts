import type { FastifyBaseLogger } from "fastify";
import type { Prisma, PrismaClient } from "@prisma/client";
import { runPeriodically } from "../util/periodic.js";
import { ADVISORY_LOCKS, lockForTransaction } from "../db/locks.js";
import {
  checkpointHash,
  checkpointSignatureValid,
  GENESIS_HASH,
  signCheckpoint,
  type CheckpointKey,
  type CheckpointKeys,
} from "./chain.js";
import { verifyAuditChain, type BrokenLink } from "./verify.js";

// Two replicas never write checkpoints at once.
const lockCheckpoints = (tx: Prisma.TransactionClient) => lockForTransaction(tx, ADVISORY_LOCKS.auditCheckpoints);

async function writeCheckpoint(
  tx: Prisma.TransactionClient,
  key: CheckpointKey,
  c: { actor: string; throughId: bigint; throughHash: string; prunedEvents: number; prevHash: string },
) {
  const content = { ...c, at: new Date(), keyId: key.keyId };
  const hash = checkpointHash(content);
  return tx.auditCheckpoint.create({ data: { ...content, hash, signature: signCheckpoint(key, hash) } });
}

export type PruneResult = { prunedEvents: number; checkpointId: number | null; refused: BrokenLink | null };

/**
 * The most events one pruning transaction deletes. A first prune of a long log (retention turned on for
 * one that grew for months) deleted everything in one transaction, which Prisma gives 5 s: 600,000 events
 * took longer, the transaction was rolled back, and every hourly run tried again with more (measured).
 */
export const PRUNE_CHUNK_EVENTS = 20_000;

/** How long one chunk's transaction may take: a chunk is a few seconds' work even on a slow disk. */
const PRUNE_CHUNK_TIMEOUT_MS = 60_000;

/**
 * Deletes the events older than `olderThan`, keeping the chain checkable: the chain is verified first (a
 * broken chain is evidence, and is never pruned), then each transaction writes a signed checkpoint holding
 * the last pruned event's hash and deletes the events it covers, `chunkEvents` at a time, each checkpoint
 * chained to the one before. The database refuses to delete events no checkpoint covers (migration 0002).
 * Events still waiting for the webhook sink are kept.
 */
export async function pruneAudit(
  prisma: PrismaClient,
  keys: CheckpointKeys,
  options: { olderThan: Date; keepUnshipped: boolean; actor: string; chunkEvents?: number },
): Promise<PruneResult> {
  const nothing: PruneResult = { prunedEvents: 0, checkpointId: null, refused: null };
  const verified = await verifyAuditChain(prisma, keys);
  if (!verified.ok) return { ...nothing, refused: verified.firstBroken };

  const firstKept = await prisma.auditEvent.findFirst({
    where: { at: { gte: options.olderThan } },
    orderBy: { id: "asc" },
    select: { id: true },
  });
  const limits = [firstKept ? firstKept.id - 1n : BigInt(verified.head.id), BigInt(verified.head.id)];
  if (options.keepUnshipped) limits.push((await prisma.auditSinkCursor.findUniqueOrThrow({ where: { id: 1 } })).lastId);
  const throughId = limits.reduce((a, b) => (a < b ? a : b));

  let done: PruneResult = nothing;
  let after = { id: verified.checkpoint ? BigInt(verified.checkpoint.throughId) : 0n, checkpointId: verified.checkpoint?.id ?? null };
  while (after.id < throughId) {
    // A chunk ends on a chained event: events from before the chain existed go with the first chained one.
    const end = await prisma.auditEvent.findFirst({
      where: { id: { gte: min(after.id + BigInt(options.chunkEvents ?? PRUNE_CHUNK_EVENTS), throughId), lte: throughId }, hash: { not: null } },
      orderBy: { id: "asc" },
      select: { id: true, hash: true },
    });
    if (!end) break;
    const chunk = await pruneThrough(prisma, keys, { after, through: { id: end.id, hash: end.hash! }, actor: options.actor });
    // Another replica pruned meanwhile: its checkpoints are what the next run builds on.
    if (!chunk) break;
    done = { prunedEvents: done.prunedEvents + chunk.prunedEvents, checkpointId: chunk.checkpointId, refused: null };
    after = { id: end.id, checkpointId: chunk.checkpointId };
  }
  return done;
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** One chunk: the checkpoint through `through` and the deletion, if the newest checkpoint is still `after`'s. */
async function pruneThrough(
  prisma: PrismaClient,
  keys: CheckpointKeys,
  c: { after: { checkpointId: number | null }; through: { id: bigint; hash: string }; actor: string },
): Promise<{ prunedEvents: number; checkpointId: number } | null> {
  return prisma.$transaction(
    async (tx) => {
      await lockCheckpoints(tx);
      const newest = await tx.auditCheckpoint.findFirst({ orderBy: { id: "desc" } });
      if ((newest?.id ?? null) !== c.after.checkpointId) return null;
      const prunedEvents = await tx.auditEvent.count({ where: { id: { lte: c.through.id } } });
      const checkpoint = await writeCheckpoint(tx, keys[0], {
        actor: c.actor,
        throughId: c.through.id,
        throughHash: c.through.hash,
        prunedEvents,
        prevHash: newest?.hash ?? GENESIS_HASH,
      });
      await tx.auditEvent.deleteMany({ where: { id: { lte: c.through.id } } });
      return { prunedEvents, checkpointId: checkpoint.id };
    },
    { timeout: PRUNE_CHUNK_TIMEOUT_MS },
  );
}

/**
 * During a master-key rotation (both keys configured), if the newest checkpoint is validly signed under
 * the previous key, writes a copy of it (same position, nothing pruned) chained to it and signed under
 * the current key: once the previous key is gone, verification still has a signature it can check.
 * Returns whether it wrote one.
 */
export async function reanchorCheckpoint(prisma: PrismaClient, keys: CheckpointKeys, actor: string): Promise<boolean> {
  return prisma.$transaction(async (tx) => {
    await lockCheckpoints(tx);
    const newest = await tx.auditCheckpoint.findFirst({ orderBy: { id: "desc" } });
    if (!newest || newest.keyId === keys[0].keyId) return false;
    const signer = keys.find((k) => k.keyId === newest.keyId);
    // Not one this broker can vouch for: left for verification to report.
    if (!signer || checkpointHash(newest) !== newest.hash || !checkpointSignatureValid(signer, newest.hash, newest.signature)) {
      return false;
    }
    const { throughId, throughHash } = newest;
    await writeCheckpoint(tx, keys[0], { actor, throughId, throughHash, prunedEvents: 0, prevHash: newest.hash });
    return true;
  });
}

/** Prunes every `intervalMs` (the first time at once), keeping `retentionDays`; failures are logged, and retried next time. */
export function scheduleAuditRetention(
  prisma: PrismaClient,
  keys: CheckpointKeys,
  options: { retentionDays: number; intervalMs: number; keepUnshipped: boolean },
  log: FastifyBaseLogger,
): { stop(): Promise<void> } {
  const prune = async () => {
    try {
      const olderThan = new Date(Date.now() - options.retentionDays * 86_400_000);
      const result = await pruneAudit(prisma, keys, { olderThan, keepUnshipped: options.keepUnshipped, actor: "retention" });
      if (result.refused) log.error({ firstBroken: result.refused }, "audit chain is broken: refusing to prune");
      else if (result.prunedEvents > 0) log.info({ ...result }, "pruned audit events");
    } catch (err) {
      log.error({ err }, "audit pruning failed");
    }
  };
  return runPeriodically(prune, options.intervalMs, { immediately: true });
}
