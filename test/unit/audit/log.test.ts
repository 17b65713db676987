import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../../src/audit/log.js";
import { AuditSpool } from "../../../src/audit/spool.js";
import type { SqlSession } from "../../../src/db/database.js";
import { waitFor } from "../../helpers/wait.js";

/** The rows of a batch as the pipeline sends it: jsonb in binary wire format (a version byte, then the JSON). */
const batchOf = <T = unknown>(param: unknown) => JSON.parse((param as Buffer).subarray(1).toString("utf8")) as T[];

/** A database whose statements wait until the test lets them through, each answering as the append function would. */
function heldDatabase() {
  const held: { rows: number; release: () => void }[] = [];
  const session = async (): Promise<SqlSession> => ({
    exec: async () => {},
    query: async <Row>(_sql: string, params?: unknown[]) => {
      const rows = batchOf(params![0]).length;
      await new Promise<void>((release) => held.push({ rows, release }));
      return [{ inserted: rows }] as Row[];
    },
    release: () => {},
  });
  return { db: { session }, held };
}

/** Each test's spool directory. */
let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "keyward-log-"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** An audit log on `db`, spooling under the test's directory. */
function openLog(db: { session: () => Promise<SqlSession> }, hooks: Partial<ConstructorParameters<typeof AuditLog>[3]> = {}): AuditLog {
  const { spool, recovered } = AuditSpool.open(root, "test-chain");
  return new AuditLog(db, spool, recovered, { onWritten: () => {}, onSetAside: () => {}, onHealth: () => {}, ...hooks });
}

/** A proxied call's event, and an issued token's record. */
const event = (n: number) => ({ kind: "proxy" as const, actor: "agent:a", requestId: `r${n}`, decision: "allow" as const });
const record = { jti: "j1", agentId: "a", grantId: "g", upstream: "api", methods: ["GET"], paths: ["/**"], issuedAt: new Date(), expiresAt: new Date(), kid: "k", parentJti: undefined };

/** Lets every statement of a heldDatabase through, the ones still to come included, until nothing waits. */
async function releaseAll(held: { release: () => void }[], log: AuditLog): Promise<void> {
  while (held.length > 0 || log.backlog > 0) {
    held.shift()?.release();
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe("the audit log's back-pressure", () => {
  it("while 5,000 events wait for a database that answers slowly, a new event waits for room; it goes on once the database catches up", async () => {
    const { db, held } = heldDatabase();
    const log = openLog(db);
    await Promise.all(Array.from({ length: 5_000 }, (_, n) => log.append(event(n))));
    expect(log.backlog).toBe(5_000);
    // The first statement is in the database's hands; the rest wait behind it.
    expect(held).toHaveLength(1);

    let through = false;
    const next = log.append(event(5_000)).then(() => (through = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(through).toBe(false);
    expect(log.admit()).toBe(true); // slow, not failing: calls are slowed, not refused

    // The database takes the first statement: room again, and the waiting event goes on.
    held.shift()!.release();
    await next;
    expect(through).toBe(true);
    await releaseAll(held, log);
    expect((await log.close()).unshipped).toBe(0);
  });
});

/** JSON's view of a value: what a statement's parameter carries. */
const withoutUndefined = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/**
 * A database that takes every statement (or refuses connections while `down`), keeping the events it was
 * sent and, per statement, the issued-token records that came with them. It refuses (as a constraint
 * would) a statement with an event of kind `refuseKind`, and, with `refuseRecords`, a set-aside that
 * brings a record.
 */
function recordingDatabase() {
  const state = { down: false, refuseKind: undefined as string | undefined, refuseRecords: false };
  const events: { eventId: string; kind: string }[] = [];
  const tokenRecords: unknown[][] = [];
  const setAsideRecords: unknown[][] = [];
  const refusal = () => Object.assign(new Error("new row violates check constraint"), { severity: "ERROR", code: "23514" });
  const session = async (): Promise<SqlSession> => {
    if (state.down) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    return {
      exec: async () => {},
      query: async <Row>(sql: string, params?: unknown[]) => {
        if (!params) return [{ "?column?": 1 }] as Row[]; // a probe
        if (sql.includes('"AuditSetAside"')) {
          const records = JSON.parse(params[4] as string) as unknown[];
          if (state.refuseRecords && records.length > 0) throw refusal();
          setAsideRecords.push(records);
          return [{ keyward_audit_append: 1 }] as Row[];
        }
        const rows = batchOf<{ eventId: string; kind: string }>(params[0]);
        const records = params[1] === undefined ? [] : (JSON.parse(params[1] as string) as unknown[]);
        if (rows.some((r) => r.kind === state.refuseKind)) throw refusal();
        events.push(...rows);
        if (records.length > 0) tokenRecords.push(records);
        return [{ inserted: rows.length }] as Row[];
      },
      release: () => {},
    };
  };
  return { db: { session }, state, events, tokenRecords, setAsideRecords };
}

describe("the audit log after a failure", () => {
  it("never sets events aside for a prepared statement the session lost (SQLSTATE 26000): it refuses new calls and retries", async () => {
    const setAside: string[] = [];
    const health: unknown[] = [];
    let lost = true;
    const session = async (): Promise<SqlSession> => ({
      exec: async () => {},
      // Only the named (prepared) statements fail: setting an event aside, unprepared, would go through.
      query: async <Row>(_sql: string, params?: unknown[], name?: string) => {
        if (lost && name !== undefined) throw Object.assign(new Error(`prepared statement "${name}" does not exist`), { severity: "ERROR", code: "26000" });
        if (!params) return [{ "?column?": 1 }] as Row[]; // a probe
        return (Buffer.isBuffer(params[0]) ? [{ inserted: batchOf(params[0]).length }] : [{ keyward_audit_append: 1 }]) as Row[];
      },
      release: () => {},
    });
    const log = openLog({ session }, { onSetAside: (row) => setAside.push(row.eventId), onHealth: (err) => health.push(err) });
    await log.append(event(1));
    await log.append(event(2));
    await waitFor(() => !log.admit(), 5_000, "the log to refuse new calls");
    expect(setAside).toEqual([]);
    lost = false;
    expect(await log.flush(5_000)).toBe(true);
    expect(setAside).toEqual([]);
    expect(log.admit()).toBe(true);
    expect(health.at(-1)).toBeNull();
    await log.close();
  });

  it("a token spooled while the database is down is answered at once, and recorded with its event once the database answers", async () => {
    const { db, state, tokenRecords } = recordingDatabase();
    state.down = true;
    const log = openLog(db);
    await log.append({ kind: "token.issued", actor: "agent:a", jti: "j1" }, record);
    await waitFor(() => !log.admit(), 2_000, "the log to find the database down");
    expect(tokenRecords).toEqual([]);
    state.down = false;
    await waitFor(() => log.admit(), 2_000, "the audit log to admit calls again", 20);
    expect(await log.flush(2_000)).toBe(true);
    expect(tokenRecords).toEqual([[withoutUndefined(record)]]);
    expect((await log.close()).unshipped).toBe(0);
  });
});

describe("an issued token's record in the audit log", () => {
  const issued = (jti: string) => ({ kind: "token.issued" as const, actor: "agent:a", jti });

  it("is spooled in its event's line: a spool left unshipped records the token when the next log adopts it", async () => {
    const { db, state, events, tokenRecords } = recordingDatabase();
    state.down = true;
    const first = openLog(db);
    await first.append(issued("j1"), record);
    expect((await first.close()).unshipped).toBe(1);
    state.down = false;
    const next = openLog(db);
    expect(await next.flush(2_000)).toBe(true);
    expect(events.map((e) => e.kind)).toEqual(["token.issued"]);
    expect(tokenRecords).toEqual([[withoutUndefined(record)]]);
    expect((await next.close()).unshipped).toBe(0);
  });

  it("set aside with its event, the record still goes to the database; refused as well, the event is set aside without it", async () => {
    const { db, state, tokenRecords, setAsideRecords } = recordingDatabase();
    const setAside: string[] = [];
    state.refuseKind = "token.issued";
    const log = openLog(db, { onSetAside: (row) => setAside.push(row.kind) });
    await log.append(issued("j1"), record);
    expect(await log.flush(2_000)).toBe(true);
    expect(setAside).toEqual(["token.issued"]);
    expect(tokenRecords).toEqual([]);
    expect(setAsideRecords).toEqual([[withoutUndefined(record)]]);

    state.refuseRecords = true;
    await log.append(issued("j2"), { ...record, jti: "j2" });
    expect(await log.flush(2_000)).toBe(true);
    // Never stuck: set aside without its record, which the set-aside event's text keeps.
    expect(setAside).toEqual(["token.issued", "token.issued"]);
    expect(setAsideRecords.at(-1)).toEqual([]);
    expect(log.admit()).toBe(true);
    expect((await log.close()).unshipped).toBe(0);
  });
});

describe("the audit log told the database is unreachable", () => {
  it("refuses calls at once (the readiness check and the proxy agree), and admits them again once its own probe gets an answer", async () => {
    const { db } = recordingDatabase();
    const log = openLog(db);
    expect(log.admit()).toBe(true);
    log.databaseUnreachable(new Error("the readiness check could not reach the database"));
    expect(log.admit()).toBe(false);
    await waitFor(() => log.admit(), 2_000, "the audit log to find the database answering", 5);
    expect((await log.close()).unshipped).toBe(0);
  });
});

describe("the audit log's event identities", () => {
  it("gives every event its own eventId, and a log opened after it none of the same", async () => {
    const shipped: string[] = [];
    const db = {
      session: async (): Promise<SqlSession> => ({
        exec: async () => {},
        query: async <Row>(_sql: string, params?: unknown[]) => {
          const rows = batchOf<{ eventId: string }>(params![0]);
          shipped.push(...rows.map((r) => r.eventId));
          return [{ inserted: rows.length }] as Row[];
        },
        release: () => {},
      }),
    };
    for (const _restart of [1, 2]) {
      const log = openLog(db);
      await Promise.all(Array.from({ length: 50 }, (_, n) => log.append(event(n))));
      expect((await log.close()).unshipped).toBe(0);
    }
    expect(shipped).toHaveLength(100);
    expect(new Set(shipped).size).toBe(100);
  });
});

describe("the audit log's shipping", () => {

  it("a few events wait a few milliseconds for others, then go in one statement", async () => {
    const { db, held } = heldDatabase();
    const log = openLog(db);
    // Three calls at once: one spool group, settled in one turn, before the linger's timer can run.
    await Promise.all([log.append(event(1)), log.append(event(2)), log.append(event(3))]);
    // Spooled (the calls went ahead), not shipped yet: without the linger, the first would have gone alone.
    expect(held).toHaveLength(0);
    await waitFor(() => held.length > 0, 1_000, "the lingering events' statement", 1);
    expect(held.map((h) => h.rows)).toEqual([3]);
    await releaseAll(held, log);
    expect((await log.close()).unshipped).toBe(0);
  });

  it("a statement's worth goes at once", async () => {
    const { db, held } = heldDatabase();
    const log = openLog(db);
    await Promise.all(Array.from({ length: 400 }, (_, n) => log.append(event(n))));
    expect(held.map((h) => h.rows)).toEqual([400]);
    await releaseAll(held, log);
    expect((await log.close()).unshipped).toBe(0);
  });

  it("a token is answered once its event and record are spooled, and they linger for company like any event", async () => {
    const { db, held } = heldDatabase();
    const log = openLog(db);
    await Promise.all([log.append(event(1)), log.append({ kind: "token.issued", actor: "agent:a", jti: "j1" }, record), log.append(event(2))]);
    // Answered, and nothing sent yet: the token did not wait for the database, nor did it end the linger.
    expect(held).toHaveLength(0);
    await waitFor(() => held.length > 0, 1_000, "the lingering events' statement", 1);
    expect(held.map((h) => h.rows)).toEqual([3]);
    await releaseAll(held, log);
    expect((await log.close()).unshipped).toBe(0);
  });
});
