import { randomUUID } from "node:crypto";
import type { PrismaClient } from "@prisma/client";
import { APPEND_ONE } from "../../src/audit/audit.js";
import { contentHash } from "../../src/audit/chain.js";
import type { TestBroker } from "./broker.js";

const DAY_MS = 86_400_000;

/** `count` events stamped `daysAgo`, appended as the application appends them (keyward_audit_append chains them). */
export async function appendOldEvents(prisma: PrismaClient, count: number, daysAgo: number): Promise<void> {
  const rows = Array.from({ length: count }, (_, seq) => {
    const content = { at: new Date(Date.now() - daysAgo * DAY_MS), actor: "admin-key:legacy", kind: "admin.change", details: { seq } };
    return { ...content, eventId: randomUUID(), contentHash: contentHash(content), seq };
  });
  await prisma.$executeRawUnsafe(APPEND_ONE, JSON.stringify(rows));
}

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
