import type { Prisma } from "@prisma/client";

/**
 * Every PostgreSQL advisory lock Keyward takes, in one place so that no two share a key. Advisory locks
 * are database-wide (not per schema) and shared by every replica: each serialises one kind of work across
 * all of them.
 */
export const ADVISORY_LOCKS = {
  /** Creating a schema and running migrations (src/db/migrate.ts): replicas starting together, one at a time. */
  schema: 7_347_291_001,
  /** Rotating the signing keys (src/signing-keys): never two rotations at the same moment. */
  signingKeyRotation: 7_347_291_003,
  /** Writing audit checkpoints (src/audit/retention.ts): one pruning or re-anchoring at a time. */
  auditCheckpoints: 7_347_291_005,
  /** Revoking admin keys (src/admin/routes.ts): two admins revoking each other must not leave none. */
  adminKeyRevocation: 7_347_291_017,
  /** Restoring a backup (src/db/backup.ts): a second restore into the same database waits, then finds it not empty. */
  restore: 7_347_291_019,
} as const;

/** Takes `key` until the transaction ends. */
export async function lockForTransaction(tx: Prisma.TransactionClient, key: number): Promise<void> {
  await tx.$queryRaw`SELECT 1 AS locked FROM pg_advisory_xact_lock(${key})`;
}
