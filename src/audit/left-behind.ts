import type { Database } from "../db/database.js";
import { AuditLog, auditChainId } from "./log.js";
import { AuditSpool } from "./spool.js";

/**
 * Ships the audit events of brokers that stopped before shipping them (their spools under `root`), as a
 * broker's start does. `keyward backup` of an embedded data dir runs it first: after a crash, the last
 * events acknowledged, and the records of tokens issued just before, are in the spool, not yet in the
 * database the backup reads. Returns how many were found, and how many are still not in the database.
 */
export async function shipLeftBehind(db: Database, root: string): Promise<{ found: number; unshipped: number }> {
  const { spool, recovered } = AuditSpool.open(root, await auditChainId(db));
  const found = recovered.reduce((count, { lines }) => count + lines.length, 0);
  const log = new AuditLog(db, spool, recovered, { onWritten: () => {}, onSetAside: () => {}, onHealth: () => {} });
  const { unshipped } = await log.close();
  return { found, unshipped };
}
