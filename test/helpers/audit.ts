import type { TestBroker } from "./broker.js";

/**
 * Runs a statement on the audit log as a database superuser could: with its append-only triggers
 * disabled around it. How the tests tamper with the hash chain.
 */
export async function editAuditLogAsSuperuser(broker: TestBroker, statement: string, params: unknown[] = []): Promise<void> {
  const session = await broker.keyward.db.session();
  try {
    await session.exec(`ALTER TABLE "AuditEvent" DISABLE TRIGGER USER`);
    try {
      await session.query(statement, params);
    } finally {
      await session.exec(`ALTER TABLE "AuditEvent" ENABLE TRIGGER USER`);
    }
  } finally {
    session.release();
  }
}
