import { describe, expect, it } from "vitest";
import { AuditBatcher } from "../../../src/audit/batch.js";
import { contentHash } from "../../../src/audit/chain.js";
import type { Database } from "../../../src/db/database.js";

type Row = { kind: string; actor: string; at: Date; contentHash: string; path?: string };

/** A table whose statements the test completes by hand; a row with path "/poison" fails its statement. */
function fakeTable() {
  const statements: { rows: Row[]; commit: () => void }[] = [];
  const committed: Row[] = [];
  const query = (sql: string, [json]: [string]) =>
    new Promise<void>((resolve, reject) => {
      expect(sql).toMatch(/^\s*INSERT INTO "AuditEvent"/);
      const data = (JSON.parse(json) as (Row & { seq: number })[]).map((r) => ({ ...r, at: new Date(r.at) }));
      expect(data.map((r) => r.seq)).toEqual(data.map((_, i) => i));
      statements.push({
        rows: data,
        commit: () => {
          if (data.some((r) => r.path === "/poison")) return reject(Object.assign(new Error("refused"), { severity: "ERROR" }));
          if (data.some((r) => r.path === "/unreachable")) return reject(new Error("connection terminated"));
          committed.push(...data);
          resolve();
        },
      });
    });
  const db = { session: async () => ({ query, release() {} }) } as unknown as Pick<Database, "session">;
  const observed: string[] = [];
  const onWritten = (e: { path?: string }) => void observed.push(e.path ?? "");
  return { db, statements, committed, observed, onWritten };
}

const flush = () => new Promise((r) => setImmediate(r));
const event = (path: string) => ({ kind: "proxy" as const, actor: "agent:a", path });

describe("AuditBatcher", () => {
  it("writes a lone event at once, and what arrives meanwhile together in the next statement, in order", async () => {
    const t = fakeTable();
    const batcher = new AuditBatcher(t.db, t.onWritten);
    const settled: string[] = [];
    const append = (path: string) => batcher.append(event(path)).then(() => settled.push(path));
    const first = append("/1");
    await flush();
    expect(t.statements.map((s) => s.rows.length)).toEqual([1]); // no waiting for company
    const rest = ["/2", "/3", "/4"].map(append);
    await flush();
    expect(settled).toEqual([]); // nothing is acknowledged before its statement commits
    t.statements[0]!.commit();
    await first;
    await flush();
    expect(t.statements.map((s) => s.rows.map((r) => r.path))).toEqual([["/1"], ["/2", "/3", "/4"]]);
    expect(settled).toEqual(["/1"]);
    t.statements[1]!.commit();
    await Promise.all(rest);
    expect(settled).toEqual(["/1", "/2", "/3", "/4"]);
    expect(t.committed.map((r) => r.path)).toEqual(["/1", "/2", "/3", "/4"]);
    expect(t.observed).toEqual(["/1", "/2", "/3", "/4"]); // every event reaches the metrics
  });

  it("stamps each row with its time and content hash", async () => {
    const t = fakeTable();
    const written = new AuditBatcher(t.db, t.onWritten).append(event("/x"));
    await flush();
    t.statements[0]!.commit();
    await written;
    const row = t.committed[0]!;
    expect(row.contentHash).toBe(contentHash({ ...event("/x"), at: row.at }));
  });

  it("fails only the request whose event the database refused: the others are retried alone", async () => {
    const t = fakeTable();
    const batcher = new AuditBatcher(t.db, t.onWritten);
    const first = batcher.append(event("/1"));
    const outcomes = ["/2", "/poison", "/3"].map((p) => batcher.append(event(p)).then(() => "ok", () => "failed"));
    await flush();
    t.statements[0]!.commit();
    await first;
    for (let i = 1; i < 5; i++) {
      await flush();
      t.statements[i]!.commit();
    }
    expect(await Promise.all(outcomes)).toEqual(["ok", "failed", "ok"]);
    expect(t.committed.map((r) => r.path)).toEqual(["/1", "/2", "/3"]);
    expect(t.observed).toEqual(["/1", "/2", "/3"]);
  });

  it("fails every request of a batch at once when the database cannot be reached", async () => {
    const t = fakeTable();
    const batcher = new AuditBatcher(t.db, t.onWritten);
    const first = batcher.append(event("/1"));
    const outcomes = ["/2", "/unreachable", "/3"].map((p) => batcher.append(event(p)).then(() => "ok", () => "failed"));
    await flush();
    t.statements[0]!.commit();
    await first;
    await flush();
    t.statements[1]!.commit();
    expect(await Promise.all(outcomes)).toEqual(["failed", "failed", "failed"]);
    expect(t.statements).toHaveLength(2); // no retries one by one
  });
});
