import type { PrismaClient } from "@prisma/client";
import {
  checkpointHash,
  checkpointSignatureValid,
  contentHash,
  GENESIS_HASH,
  linkHash,
  type CheckpointKeys,
} from "./chain.js";

export type BrokenLink =
  | { at: "event"; id: string; reason: string }
  | { at: "checkpoint"; id: number; reason: string };

export type ChainVerification = {
  ok: boolean;
  /** The first broken link found, walking from the oldest checkpoint to the newest event; null when ok. */
  firstBroken: BrokenLink | null;
  checkedEvents: number;
  /** Events written before the chain existed (migration 0002) and never pruned: not covered. */
  unchainedEvents: number;
  /** The newest pruning checkpoint, where the walk over events starts. */
  checkpoint: { id: number; at: Date; throughId: string; throughHash: string } | null;
  /**
   * Proxy events recorded more than once: the same call (requestId) with the same kind and decision on two
   * rows. Each event has one identity (eventId, unique), so this is 0 unless a writer gave one happening
   * two identities; counted per call, over the events the walk covers.
   */
  duplicates: number;
  /** The chain head as read when the walk started: record it elsewhere to detect a rewrite of the tail later. */
  head: { id: string; hash: string };
};

const BATCH = 2000;

/**
 * Re-walks the whole audit chain: the checkpoints (hashes, links, signatures), then every event after the
 * newest checkpoint up to the head as read at the start (events appended meanwhile are left for the next
 * run). Read-only; usable from the API and from a CLI holding the master key.
 *
 * `keys` are the checkpoint keys of the current and, during a rotation, the previous master key. Only the
 * newest checkpoint's signature is checked: each checkpoint's hash covers the previous one's, so that
 * signature vouches for them all, and old checkpoints stay checkable after their key is gone.
 */
export async function verifyAuditChain(prisma: PrismaClient, keys: CheckpointKeys): Promise<ChainVerification> {
  // The walk reads in several statements, not one snapshot: a replica pruning meanwhile (a checkpoint
  // written, the events it covers deleted) makes events vanish under it, which reads as events missing.
  // Pruning always writes its checkpoint first, in the same transaction, so a break found after a new
  // checkpoint appeared is walked again from it; a break with no new checkpoint is the chain's own.
  for (let attempt = 1; ; attempt++) {
    const seen = { checkpointId: null as number | null };
    const verified = await walkAuditChain(prisma, keys, seen);
    if (verified.ok || attempt === MAX_WALKS) return verified;
    const newest = await prisma.auditCheckpoint.findFirst({ orderBy: { id: "desc" }, select: { id: true } });
    if ((newest?.id ?? null) === seen.checkpointId) return verified;
  }
}

/** Walks after a concurrent prune: more than a couple means something else is going on, reported as it is. */
const MAX_WALKS = 3;

/** One walk; `seen` gets the id of the newest checkpoint it started from. */
async function walkAuditChain(prisma: PrismaClient, keys: CheckpointKeys, seen: { checkpointId: number | null }): Promise<ChainVerification> {
  // Checkpoints before the head: a checkpoint read then never reaches past the head read after it.
  const checkpoints = await prisma.auditCheckpoint.findMany({ orderBy: { id: "asc" } });
  seen.checkpointId = checkpoints.at(-1)?.id ?? null;
  const head = await prisma.auditChainHead.findUniqueOrThrow({ where: { id: 1 } });
  const result = (
    firstBroken: BrokenLink | null,
    counts: { checkedEvents: number; unchainedEvents: number; duplicates?: number },
    checkpoint: ChainVerification["checkpoint"],
  ): ChainVerification => ({
    ok: firstBroken === null,
    firstBroken,
    duplicates: 0,
    ...counts,
    checkpoint,
    head: { id: head.lastId.toString(), hash: head.lastHash },
  });

  // 1. checkpoints
  let prevCheckpointHash = GENESIS_HASH;
  let start = { id: null as bigint | null, hash: GENESIS_HASH };
  for (const c of checkpoints) {
    const broken = (reason: string) => result({ at: "checkpoint", id: c.id, reason }, { checkedEvents: 0, unchainedEvents: 0 }, null);
    if (c.prevHash !== prevCheckpointHash) return broken("previous checkpoint hash does not match");
    if (checkpointHash(c) !== c.hash) return broken("checkpoint content does not match its hash");
    if (start.id !== null && c.throughId < start.id) return broken("checkpoint goes backwards");
    const key = keys.find((k) => k.keyId === c.keyId);
    if (c === checkpoints.at(-1) && !(key && checkpointSignatureValid(key, c.hash, c.signature))) {
      return broken("checkpoint signature is not valid under the master key");
    }
    prevCheckpointHash = c.hash;
    start = { id: c.throughId, hash: c.throughHash };
  }
  const newest = checkpoints.at(-1);
  const checkpoint = newest
    ? { id: newest.id, at: newest.at, throughId: newest.throughId.toString(), throughHash: newest.throughHash }
    : null;

  // 2. events after it. With no checkpoint the first chained event may follow unchained (pre-0002) ones.
  let expected = { id: start.id === null ? null : start.id + 1n, prevHash: start.hash };
  let last = { id: start.id, hash: start.hash };
  let checkedEvents = 0;
  let unchainedEvents = 0;
  let after = start.id ?? -1n;
  while (after < head.lastId) {
    const rows = await prisma.auditEvent.findMany({
      where: { id: { gt: after, lte: head.lastId } },
      orderBy: { id: "asc" },
      take: BATCH,
    });
    if (rows.length === 0) break;
    for (const row of rows) {
      const broken = (id: bigint, reason: string) =>
        result({ at: "event", id: id.toString(), reason }, { checkedEvents, unchainedEvents }, checkpoint);
      if (row.hash === null && checkedEvents === 0 && start.id === null) {
        unchainedEvents++;
        continue;
      }
      if (expected.id !== null && row.id !== expected.id) return broken(expected.id, "event is missing");
      if (row.hash === null || row.prevHash === null || row.contentHash === null) return broken(row.id, "event is not chained");
      if (contentHash(row) !== row.contentHash) return broken(row.id, "event content does not match its hash");
      if (row.prevHash !== expected.prevHash) return broken(row.id, "previous hash does not match the previous event");
      if (linkHash(row.prevHash, row.id, row.contentHash) !== row.hash) return broken(row.id, "event hash does not match");
      checkedEvents++;
      expected = { id: row.id + 1n, prevHash: row.hash };
      last = { id: row.id, hash: row.hash };
    }
    after = rows[rows.length - 1]!.id;
  }

  // 3. the head must be the last event: anything else means events at the end were removed or rewritten.
  const headMatches = last.hash === head.lastHash && (last.id === null || last.id === head.lastId);
  if (!headMatches) {
    const missing = (last.id ?? 0n) + 1n;
    return result({ at: "event", id: missing.toString(), reason: "events at the end of the chain are missing" }, { checkedEvents, unchainedEvents }, checkpoint);
  }
  return result(null, { checkedEvents, unchainedEvents, duplicates: await countDuplicates(prisma, start.id ?? -1n, head.lastId) }, checkpoint);
}

/**
 * One grouped scan over the proxy events in (after, through]. (requestId, kind, decision): a call denied
 * after an allow event whose commit outcome was unknown has a deny beside that allow, which is two
 * different events, not one written twice.
 */
async function countDuplicates(prisma: PrismaClient, after: bigint, through: bigint): Promise<number> {
  const [row] = await prisma.$queryRawUnsafe<{ duplicates: bigint }[]>(
    `SELECT count(*) AS "duplicates" FROM (
       SELECT 1 FROM "AuditEvent"
        WHERE "id" > $1 AND "id" <= $2 AND "kind" IN ('proxy', 'proxy.response') AND "requestId" IS NOT NULL
        GROUP BY "requestId", "kind", "decision" HAVING count(*) > 1
     ) AS "repeated"`,
    after,
    through,
  );
  return Number(row?.duplicates ?? 0);
}
