import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../../src/audit/log.js";
import { AuditSpool } from "../../../src/audit/spool.js";
import type { SqlSession } from "../../../src/db/database.js";

/** A database whose statements wait until the test lets them through, each answering as the append function would. */
function heldDatabase() {
  const held: { rows: number; release: () => void }[] = [];
  const session = async (): Promise<SqlSession> => ({
    exec: async () => {},
    query: async <Row>(_sql: string, params?: unknown[]) => {
      const rows = (JSON.parse(params![0] as string) as unknown[]).length;
      await new Promise<void>((release) => held.push({ rows, release }));
      return [{ inserted: rows }] as Row[];
    },
    release: () => {},
  });
  return { db: { session }, held };
}

describe("the audit log's back-pressure", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "keyward-log-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("while 5,000 events wait for a database that answers slowly, a new event waits for room; it goes on once the database catches up", async () => {
    const { db, held } = heldDatabase();
    const { spool, recovered } = AuditSpool.open(root);
    const log = new AuditLog(db, spool, recovered, { onWritten: () => {}, onSetAside: () => {}, onHealth: () => {} });
    const event = (n: number) => ({ kind: "proxy" as const, actor: "agent:a", requestId: `r${n}`, decision: "allow" as const });
    await Promise.all(Array.from({ length: 5_000 }, (_, n) => log.append(event(n))));
    expect(log.backlog).toBe(5_000);
    // The first batch is in the database's hands; the rest wait behind it.
    expect(held.map((h) => h.rows)).toEqual([1]);

    let through = false;
    const next = log.append(event(5_000)).then(() => (through = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(through).toBe(false);
    expect(log.admit()).toBe(true); // slow, not failing: calls are slowed, not refused

    // The database takes the first statement: room again, and the waiting event goes on.
    held.shift()!.release();
    await next;
    expect(through).toBe(true);
    while (held.length > 0 || log.backlog > 0) {
      held.shift()?.release();
      await new Promise((r) => setTimeout(r, 1));
    }
    expect((await log.close()).unshipped).toBe(0);
  });
});
