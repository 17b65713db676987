import type { FastifyBaseLogger } from "fastify";
import type { Prisma, PrismaClient } from "@prisma/client";
import { runPeriodically } from "../util/periodic.js";
import {
  checkpointHash,
  checkpointSignatureValid,
  GENESIS_HASH,
  signCheckpoint,
  type CheckpointKey,
  type CheckpointKeys,
} from "./chain.js";
import { verifyAuditChain, type BrokenLink } from "./verify.js";

// Arbitrary constant shared by every replica, so two replicas never write checkpoints at once.
const CHECKPOINT_LOCK_KEY = 7_347_291_005n;

const lockCheckpoints = (tx: Prisma.TransactionClient) =>
  tx.$queryRaw`SELECT 1 AS locked FROM pg_advisory_xact_lock(${CHECKPOINT_LOCK_KEY})`;

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
 * Deletes the events older than `olderThan`, keeping the chain checkable: the chain is verified first (a
 * broken chain is evidence, and is never pruned), then one transaction writes a signed checkpoint holding
 * the last pruned event's hash and deletes the events it covers. The database refuses to delete events no
 * checkpoint covers (migration 0002). Events still waiting for the webhook sink are kept.
 */
export async function pruneAudit(
  prisma: PrismaClient,
  keys: CheckpointKeys,
  options: { olderThan: Date; keepUnshipped: boolean; actor: string },
): Promise<PruneResult> {
  const nothing: PruneResult = { prunedEvents: 0, checkpointId: null, refused: null };
  const verified = await verifyAuditChain(prisma, keys);
  if (!verified.ok) return { ...nothing, refused: verified.firstBroken };

  const startId = verified.checkpoint ? BigInt(verified.checkpoint.throughId) : 0n;
  const firstKept = await prisma.auditEvent.findFirst({
    where: { at: { gte: options.olderThan } },
    orderBy: { id: "asc" },
    select: { id: true },
  });
  const limits = [firstKept ? firstKept.id - 1n : BigInt(verified.head.id), BigInt(verified.head.id)];
  if (options.keepUnshipped) limits.push((await prisma.auditSinkCursor.findUniqueOrThrow({ where: { id: 1 } })).lastId);
  const throughId = limits.reduce((a, b) => (a < b ? a : b));
  if (throughId <= startId) return nothing;
  const through = await prisma.auditEvent.findUnique({ where: { id: throughId }, select: { hash: true } });
  // Events from before the chain existed are pruned together with the first chained one old enough.
  if (!through?.hash) return nothing;

  return prisma.$transaction(async (tx) => {
    await lockCheckpoints(tx);
    const newest = await tx.auditCheckpoint.findFirst({ orderBy: { id: "desc" } });
    // Another replica pruned since the verification: its checkpoint is what the next run builds on.
    if ((newest?.id ?? null) !== (verified.checkpoint?.id ?? null)) return nothing;
    const prunedEvents = await tx.auditEvent.count({ where: { id: { lte: throughId } } });
    const checkpoint = await writeCheckpoint(tx, keys[0], {
      actor: options.actor,
      throughId,
      throughHash: through.hash!,
      prunedEvents,
      prevHash: newest?.hash ?? GENESIS_HASH,
    });
    await tx.auditEvent.deleteMany({ where: { id: { lte: throughId } } });
    return { prunedEvents, checkpointId: checkpoint.id, refused: null };
  });
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
