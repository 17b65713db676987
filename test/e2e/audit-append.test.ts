import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchJsonOf, serialisedAuditRow } from "../../src/audit/audit.js";
import { openDatabase, type Database, type SqlSession } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { newStore, type Store } from "../helpers/broker.js";

const event = () => serialisedAuditRow({ kind: "proxy", actor: "agent:a", requestId: randomUUID(), decision: "allow", method: "GET", path: "/v1/x" }, randomUUID()).json;
const batch = (size: number) => batchJsonOf(Array.from({ length: size }, event));

/**
 * Sequential scans of "AuditEvent" by this session not yet reported to the statistics (which happens at most once
 * a second, and never inside a transaction): within one transaction, the difference is the transaction's own.
 */
const seqScans = async (session: SqlSession) =>
  Number((await session.query<{ n: string }>(`SELECT seq_scan AS n FROM pg_stat_xact_user_tables WHERE relid = '"AuditEvent"'::regclass`))[0]!.n);

describe("keyward_audit_append", () => {
  let store: Store;
  let db: Database;
  beforeAll(async () => {
    store = newStore();
    db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await store?.drop();
  });

  it("skips the events of a batch already in (a batch sent again after an unknown commit outcome)", async () => {
    const session = await db.session();
    try {
      const rows = batch(3);
      expect(await session.query(`SELECT keyward_audit_append($1::jsonb) AS n`, [rows])).toEqual([{ n: 3 }]);
      expect(await session.query(`SELECT keyward_audit_append($1::jsonb) AS n`, [rows])).toEqual([{ n: 0 }]);
    } finally {
      session.release();
    }
  });

  it("never scans the whole log: a connection's plan made on a small table still finds written events by index as it grows", async () => {
    // PL/pgSQL keeps a connection's plans; planned on a small, never-analyzed table, the lookup of written
    // events was a sequential scan of the log for every batch (migration 0017), costing more as the log grew.
    const session = await db.session();
    try {
      await session.exec("BEGIN");
      const before = await seqScans(session);
      for (let i = 0; i < 20; i++) await session.query(`SELECT keyward_audit_append($1::jsonb)`, [batch(5)]);
      await session.query(`SELECT keyward_audit_append($1::jsonb)`, [batch(2_000)]);
      for (let i = 0; i < 20; i++) await session.query(`SELECT keyward_audit_append($1::jsonb)`, [batch(5)]);
      expect(await seqScans(session)).toBe(before);
      await session.exec("COMMIT");
    } finally {
      session.release();
    }
  });
});
