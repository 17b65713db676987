import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditRow, type AuditInput } from "../../src/audit/audit.js";
import { auditRowsJson, insertAuditRows } from "../../src/audit/batch.js";
import { AuditJournal } from "../../src/audit/journal.js";
import { migrate } from "../../src/db/migrate.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { BACKEND, newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startBrokerProcess } from "../helpers/broker-process.js";
import { runCli } from "../helpers/cli.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Event = { id: string; kind: string; requestId: string | null; decision: string | null; status: number | null };

/**
 * The write-ahead audit journal (KEYWARD_AUDIT_JOURNAL, src/audit/journal.ts): calls are answered
 * once their events are on the local disk, the events reach the database behind them, exactly once and
 * chained, through a crash, and the broker refuses calls once the database stops taking them.
 */
// Brokers are stopped and started, and the CLI run, several times per test: slow beside a loaded run.
describe("audit journal", { timeout: 120_000 }, () => {
  let store: Store;
  let journalDir: string;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  const env = () => ({ KEYWARD_AUDIT_JOURNAL: "on", KEYWARD_AUDIT_JOURNAL_DIR: journalDir, KEYWARD_AUDIT_JOURNAL_MAX_LAG_MS: "300" });

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    journalDir = join(store.dataDir, "audit-journal");
    broker = await startBroker(store, env());
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "journal-test-secret-value" });
    const agent = await createAgent(broker, "journaled");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"], deny: [{ method: "DELETE" }] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = (b: { url: string }, method: "GET" | "DELETE", path: string) =>
    fetch(`${b.url}/proxy/api${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const eventsOf = async (b: TestBroker, requestId: string): Promise<Event[]> => {
    const res = await fetch(`${b.url}/v1/audit/export`, { headers: { authorization: `Bearer ${b.adminKey}` } });
    const all = (await res.text()).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Event);
    return all.filter((e) => e.requestId === requestId);
  };
  const verify = async (b: TestBroker) => (await b.admin("get", "/v1/audit/verify")).body;
  const instanceDirs = () => readdirSync(journalDir).filter((n) => !n.startsWith("."));
  const onSession = async <T>(db: Pick<Database, "session">, statement: string, params: unknown[] = []): Promise<T[]> => {
    const session = await db.session();
    try {
      return await session.query<T>(statement, params);
    } finally {
      session.release();
    }
  };

  it("answers once the events are journaled, and this broker's audit reads see them at once, chained", async () => {
    const responses = await Promise.all(
      Array.from({ length: 24 }, (_, i) => call(broker, i % 4 === 3 ? "DELETE" : "GET", `/v1/items/${i}`)),
    );
    expect(responses.map((r) => r.status)).toEqual(Array.from({ length: 24 }, (_, i) => (i % 4 === 3 ? 403 : 200)));
    for (const [i, res] of responses.entries()) {
      const events = await eventsOf(broker, res.headers.get("x-request-id")!);
      if (i % 4 === 3) expect(events.map((e) => [e.kind, e.decision])).toEqual([["proxy", "deny"]]);
      else expect(events.map((e) => [e.kind, e.decision, e.status])).toEqual([["proxy", "allow", null], ["proxy.response", "allow", 200]]);
    }
    expect(await verify(broker)).toMatchObject({ ok: true });
    // One journal, this broker's, with its lock and a segment file.
    expect(instanceDirs()).toHaveLength(1);
    expect(readdirSync(join(journalDir, instanceDirs()[0]!)).sort()).toEqual(["0000000000000001.jsonl", "LOCK"]);
  });

  it("keeps forwarding while the database refuses for less than the allowed lag, then refuses calls, and resumes", async () => {
    const refuse = `ALTER TABLE "AuditEvent" ADD CONSTRAINT test_refuse_writes CHECK (false) NOT VALID`;
    await onSession(broker.keyward.db, refuse);
    let journaledOnly: Response;
    try {
      journaledOnly = await call(broker, "GET", "/v1/while-refused");
      expect(journaledOnly.status).toBe(200);
      const forwarded = upstream.received.length;
      await new Promise((r) => setTimeout(r, 500));
      const refused = await call(broker, "GET", "/v1/after-the-lag");
      expect(refused.status).toBe(503);
      expect((await refused.json()).error.code).toBe("audit_unavailable");
      expect(upstream.received.length).toBe(forwarded);
    } finally {
      await onSession(broker.keyward.db, `ALTER TABLE "AuditEvent" DROP CONSTRAINT test_refuse_writes`);
    }
    // Once the database takes them again, the journaled events go in, and calls are accepted again.
    const requestId = journaledOnly.headers.get("x-request-id")!;
    await expect.poll(async () => (await eventsOf(broker, requestId)).length, { timeout: 10_000 }).toBe(2);
    await expect.poll(async () => (await call(broker, "GET", "/v1/resumed")).status, { timeout: 10_000 }).toBe(200);
    expect(broker.logs.some((l) => l.includes("audit events are not reaching the database"))).toBe(true);
    expect(broker.logs.some((l) => l.includes("audit events reach the database again"))).toBe(true);
    expect(await verify(broker)).toMatchObject({ ok: true });
  });

  it("replays a stopped broker's journal at the next start: what the cursor says is in is skipped, a torn last write dropped", async () => {
    await broker.close();
    // Its own journal was shipped whole on close, and removed with its cursor.
    expect(instanceDirs()).toEqual([]);

    // The journal a crashed broker would have left: six events, the first two already shipped (the
    // cursor says so), the sixth torn mid-write; its lock names a process that no longer exists.
    const journalId = randomUUID();
    const events: AuditInput[] = Array.from({ length: 6 }, (_, i) => ({
      kind: "proxy",
      actor: "agent:crashed",
      requestId: `replayed-${i + 1}`,
      upstream: "api",
      method: "GET",
      path: `/v1/replayed/${i + 1}`,
      decision: "allow",
      reason: "allow[0]",
    }));
    const rows = events.map(auditRow);
    const db = await openDatabase(store.databaseUrl ? { kind: "postgres", url: store.databaseUrl } : { kind: "pglite", dataDir: store.dataDir });
    try {
      await insertAuditRows(db, auditRowsJson(rows.slice(0, 2)), { id: journalId, shippedSeq: 2 });
    } finally {
      await db.close();
    }
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid!;
    const instance = join(journalDir, journalId);
    mkdirSync(instance);
    writeFileSync(join(instance, "LOCK"), String(dead));
    const lines = rows.map((row, i) => JSON.stringify({ seq: i + 1, ...row }) + "\n");
    writeFileSync(join(instance, "0000000000000001.jsonl"), lines.slice(0, 5).join("") + lines[5]!.slice(0, 40));

    broker = await startBroker(store, env());
    for (let i = 1; i <= 5; i++) expect((await eventsOf(broker, `replayed-${i}`)).map((e) => e.kind)).toEqual(["proxy"]);
    expect(await eventsOf(broker, "replayed-6")).toEqual([]);
    expect(existsSync(instance)).toBe(false);
    expect(await onSession(broker.keyward.db, `SELECT * FROM "AuditJournalCursor" WHERE "journalId" = $1`, [journalId])).toEqual([]);
    expect(broker.logs.some((l) => l.includes("replayed the audit journal") && l.includes(journalId) && l.includes('"events":3'))).toBe(true);
    expect(await verify(broker)).toMatchObject({ ok: true });
  });

  it("refuses to start on a journal damaged anywhere but its last write, naming the file", async () => {
    await broker.close();
    const instance = join(journalDir, randomUUID());
    mkdirSync(instance);
    const row = JSON.stringify({ seq: 1, ...auditRow({ kind: "proxy", actor: "agent:x", requestId: "damaged" }) });
    writeFileSync(join(instance, "0000000000000001.jsonl"), `${row}\nnot json\n`);
    await expect(startBroker(store, env())).rejects.toThrow(/audit journal .*0000000000000001\.jsonl is damaged at line 2/);
    // Nothing of it went in; moved aside, the broker starts.
    writeFileSync(join(instance, "0000000000000001.jsonl"), `${row}\n`);
    broker = await startBroker(store, env());
    expect((await eventsOf(broker, "damaged")).map((e) => e.kind)).toEqual(["proxy"]);
  });

  it("a broker stopped while the database refuses leaves its events in the journal; a backup, then the next start, finds them", async () => {
    const refuse = `ALTER TABLE "AuditEvent" ADD CONSTRAINT test_refuse_writes CHECK (false) NOT VALID`;
    await onSession(broker.keyward.db, refuse);
    const res = await call(broker, "GET", "/v1/before-stop");
    expect(res.status).toBe(200);
    await broker.close();
    expect(broker.logs.some((l) => l.includes("audit events left in the journal") && l.includes('"leftInJournal":2'))).toBe(true);
    expect(instanceDirs()).toHaveLength(1);
    const db = await openDatabase(store.databaseUrl ? { kind: "postgres", url: store.databaseUrl } : { kind: "pglite", dataDir: store.dataDir });
    try {
      await onSession(db, `ALTER TABLE "AuditEvent" DROP CONSTRAINT test_refuse_writes`);
    } finally {
      await db.close();
    }
    // A backup taken now holds them: it replays the stopped broker's journal first.
    const backup = await runCli(["backup"], {
      env: { ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : { KEYWARD_DATA_DIR: store.dataDir }), ...env() },
    });
    expect(backup.code).toBe(0);
    expect(backup.stderr).toContain("replayed 2 audit events from the journal of a stopped broker");
    const requestId = res.headers.get("x-request-id")!;
    const backedUp = backup.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.table === "AuditEvent" && l.row.requestId === requestId);
    expect(backedUp.map((l) => l.row.kind)).toEqual(["proxy", "proxy.response"]);
    expect(instanceDirs()).toEqual([]);
    broker = await startBroker(store, env());
    expect((await eventsOf(broker, requestId)).map((e) => e.kind)).toEqual(["proxy", "proxy.response"]);
    expect(await verify(broker)).toMatchObject({ ok: true });
  });

  it("brokers sharing the directory each keep their own journal and never replay a running one's", async () => {
    const other = newStore();
    const second = await startBroker(other, { KEYWARD_AUDIT_JOURNAL: "on", KEYWARD_AUDIT_JOURNAL_DIR: journalDir });
    try {
      expect(instanceDirs()).toHaveLength(2);
      expect((await call(broker, "GET", "/v1/still-mine")).status).toBe(200);
      expect(second.logs.some((l) => l.includes("replayed the audit journal"))).toBe(false);
    } finally {
      await second.close();
      await other.drop();
    }
    expect(instanceDirs()).toHaveLength(1);
  });

  it("moves to a new segment file past its size, deletes segments once shipped, and keeps the order", async () => {
    const other = newStore();
    const db = await openDatabase(other.databaseUrl ? { kind: "postgres", url: other.databaseUrl } : { kind: "pglite", dataDir: other.dataDir });
    try {
      await migrate(db);
      const journal = await AuditJournal.open(db, { dir: join(other.dataDir, "journal"), maxLagMs: 5_000, segmentBytes: 1 });
      const segments = () => readdirSync(join(other.dataDir, "journal", journal.journalId)).filter((n) => n.endsWith(".jsonl"));
      const event = (i: number): AuditInput => ({ kind: "proxy", actor: "agent:rotating", requestId: `rot-${i}` });
      await Promise.all(Array.from({ length: 30 }, (_, i) => journal.append(event(i))));
      for (let i = 30; i < 40; i++) await journal.append(event(i));
      await journal.settled();
      await expect.poll(segments).toHaveLength(1);
      const rows = await onSession<{ requestId: string }>(db, `SELECT "requestId" FROM "AuditEvent" WHERE actor = 'agent:rotating' ORDER BY id`);
      expect(rows.map((r) => r.requestId)).toEqual(Array.from({ length: 40 }, (_, i) => `rot-${i}`));
      expect(await journal.close()).toEqual({ leftInJournal: 0 });
      expect(readdirSync(join(other.dataDir, "journal"))).toEqual([]);
    } finally {
      await db.close();
      await other.drop();
    }
  });

  // A real crash: PostgreSQL only, where the test can stop the database from taking the events while
  // the broker runs in a process of its own (PGlite belongs to the process that opened it).
  it.skipIf(BACKEND !== "postgres")("a broker killed with events not yet in the database loses none of them, and duplicates none", async () => {
    await broker.close();
    const child = await startBrokerProcess(store, { KEYWARD_AUDIT_JOURNAL: "on", KEYWARD_AUDIT_JOURNAL_DIR: journalDir, KEYWARD_AUDIT_JOURNAL_MAX_LAG_MS: "60000" });
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl! });
    const ids: string[] = [];
    try {
      const shipped = await call(child, "GET", "/v1/before");
      ids.push(shipped.headers.get("x-request-id")!);
      await expect.poll(async () => (await onSession(db, `SELECT 1 FROM "AuditEvent" WHERE "requestId" = $1`, [ids[0]])).length).toBe(2);
      await onSession(db, `ALTER TABLE "AuditEvent" ADD CONSTRAINT test_refuse_writes CHECK (false) NOT VALID`);
      for (let i = 0; i < 5; i++) {
        const res = await call(child, "GET", `/v1/unshipped/${i}`);
        expect(res.status).toBe(200);
        ids.push(res.headers.get("x-request-id")!);
      }
      await child.kill();
      await onSession(db, `ALTER TABLE "AuditEvent" DROP CONSTRAINT test_refuse_writes`);
      broker = await startBroker(store, env());
      // Five calls' decisions and outcomes were only in the killed broker's journal.
      expect(broker.logs.some((l) => l.includes("replayed the audit journal") && l.includes('"events":10'))).toBe(true);
      for (const id of ids) expect((await eventsOf(broker, id)).map((e) => e.kind)).toEqual(["proxy", "proxy.response"]);
      expect(await verify(broker)).toMatchObject({ ok: true });
    } finally {
      await onSession(db, `ALTER TABLE "AuditEvent" DROP CONSTRAINT IF EXISTS test_refuse_writes`);
      await db.close();
    }
  });
});
