import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { batchJsonOf, serialisedAuditRow } from "../../src/audit/audit.js";
import { GENESIS_HASH, linkHash } from "../../src/audit/chain.js";
import { openDatabase, type Database, type SqlSession } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { newStore, type Store } from "../helpers/broker.js";

const event = () => serialisedAuditRow({ kind: "proxy", actor: "agent:a", requestId: randomUUID(), decision: "allow", method: "GET", path: "/v1/x" }, randomUUID()).json;
const batch = (size: number) => batchJsonOf(Array.from({ length: size }, event));

type Link = { id: string; eventId: string | null; contentHash: string; prevHash: string; hash: string };
/** Every event in id order, each checked against the one before it: the chain as `keyward audit verify` recomputes it. */
async function chainOf(session: SqlSession): Promise<Link[]> {
  // Ordered by the table's column: the output column "id" is text, and "10" sorts before "2".
  const rows = await session.query<Link>(
    `SELECT "id"::text AS id, "eventId", "contentHash", "prevHash", "hash" FROM "AuditEvent" ORDER BY "AuditEvent"."id"`,
  );
  let prev = GENESIS_HASH;
  for (const [i, row] of rows.entries()) {
    expect(row.id).toBe(String(i + 1));
    expect(row.prevHash).toBe(prev);
    expect(row.hash).toBe(linkHash(prev, BigInt(row.id), row.contentHash));
    prev = row.hash;
  }
  const [head] = await session.query<{ lastId: string; lastHash: string }>(`SELECT "lastId"::text AS "lastId", "lastHash" FROM "AuditChainHead" WHERE "id" = 1`);
  expect(head).toEqual({ lastId: String(rows.length), lastHash: prev });
  return rows;
}

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

  it("prepares a named statement once per connection: the server parses and plans the pipeline's statement once", async () => {
    const session = await db.session();
    try {
      const sql = `SELECT keyward_audit_append($1::jsonb) AS n`;
      for (let i = 0; i < 3; i++) expect(await session.query(sql, [batch(2)], "audit_append_test")).toEqual([{ n: 2 }]);
      const prepared = await session.query<{ statement: string; runs: number }>(
        `SELECT statement, (generic_plans + custom_plans)::int AS runs FROM pg_prepared_statements WHERE name = 'audit_append_test'`,
      );
      expect(prepared).toEqual([{ statement: sql, runs: 3 }]);
      // an unnamed statement leaves nothing prepared
      await session.query(`SELECT 1 AS one`, []);
      expect(await session.query(`SELECT count(*)::int AS n FROM pg_prepared_statements`)).toEqual([{ n: 1 }]);
    } finally {
      session.release();
    }
  });

  it("links a batch that is partly in already: the new events only, in seq order, the chain unbroken", async () => {
    const session = await db.session();
    try {
      const rows = Array.from({ length: 6 }, event);
      const before = (await chainOf(session)).length;
      expect(await session.query(`SELECT keyward_audit_append($1::jsonb) AS n`, [batchJsonOf([rows[1]!, rows[3]!])])).toEqual([{ n: 2 }]);
      // the same two again, among four new ones, and the batch's seq order is not its array order
      const resent = JSON.parse(batchJsonOf(rows)) as { seq: number }[];
      resent.reverse();
      expect(await session.query(`SELECT keyward_audit_append($1::jsonb) AS n`, [JSON.stringify(resent)])).toEqual([{ n: 4 }]);
      const chain = (await chainOf(session)).slice(before);
      const ids = rows.map((json) => (JSON.parse(json) as { eventId: string }).eventId);
      expect(chain.map((r) => r.eventId)).toEqual([ids[1], ids[3], ids[0], ids[2], ids[4], ids[5]]);
    } finally {
      session.release();
    }
  });

  it("links a batch whose seqs are not its places (gaps, any order) in seq order all the same", async () => {
    const session = await db.session();
    try {
      const rows = Array.from({ length: 4 }, event);
      const before = (await chainOf(session)).length;
      const sparse = (JSON.parse(batchJsonOf(rows)) as { seq: number }[]).map((row, i) => ({ ...row, seq: [30, 10, 40, 20][i]! }));
      expect(await session.query(`SELECT keyward_audit_append($1::jsonb) AS n`, [JSON.stringify(sparse)])).toEqual([{ n: 4 }]);
      const ids = rows.map((json) => (JSON.parse(json) as { eventId: string }).eventId);
      expect((await chainOf(session)).slice(before).map((r) => r.eventId)).toEqual([ids[1], ids[3], ids[0], ids[2]]);
    } finally {
      session.release();
    }
  });

  it("refuses a batch with an event without a well-formed content hash, and writes none of it", async () => {
    const session = await db.session();
    try {
      const before = (await chainOf(session)).length;
      const bad = JSON.parse(batch(3)) as { contentHash: string }[];
      bad[2]!.contentHash = "not-a-hash";
      await expect(session.query(`SELECT keyward_audit_append($1::jsonb)`, [JSON.stringify(bad)])).rejects.toThrow(/no content hash/);
      expect((await chainOf(session)).length).toBe(before);
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
      // and the lookup of what is in already, which runs when a batch comes again
      for (let i = 0; i < 5; i++) {
        const again = batch(5);
        await session.query(`SELECT keyward_audit_append($1::jsonb)`, [again]);
        expect(await session.query(`SELECT keyward_audit_append($1::jsonb) AS n`, [again])).toEqual([{ n: 0 }]);
      }
      expect(await seqScans(session)).toBe(before);
      await session.exec("COMMIT");
    } finally {
      session.release();
    }
  });
});
