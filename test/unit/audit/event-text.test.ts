import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { batchJsonb, batchJsonOf, serialisedAuditRow, type AuditInput } from "../../../src/audit/audit.js";
import { contentHash } from "../../../src/audit/chain.js";
import { operationsSummary, recordedNames, recordedOperations } from "../../../src/audit/event-text.js";

const rowOf = (event: AuditInput, eventId: string) => serialisedAuditRow(event, eventId).row;

describe("names recorded with an event", () => {
  it("go into details beside what is there, before the content hash is taken", () => {
    const row = rowOf({ kind: "proxy", actor: "agent:a1", agentId: "a1", grantId: "g1", details: { operations: ["mutation x"] }, names: { agent: "deploy-bot", grant: "deploy-staging" } }, "e1");
    expect(row.details).toEqual({ operations: ["mutation x"], names: { agent: "deploy-bot", grant: "deploy-staging" } });
    expect(row).not.toHaveProperty("names");
    expect(row.contentHash).toBe(contentHash(row));
    const renamed = { ...row, details: { operations: ["mutation x"], names: { agent: "deploy-bot", grant: "other" } } };
    expect(contentHash(renamed)).not.toBe(row.contentHash);
  });

  it("leave details as they are when no name is known", () => {
    expect(rowOf({ kind: "proxy", actor: "anonymous", names: {} }, "e2").details).toBeUndefined();
    expect(rowOf({ kind: "proxy", actor: "anonymous", details: { reason: "r" }, names: { agent: undefined } }, "e3").details).toEqual({ reason: "r" });
  });

  it("are read back from details, ignoring what is not a name", () => {
    expect(recordedNames({ names: { agent: "deploy-bot", grant: "deploy-staging" } })).toEqual({ agent: "deploy-bot", grant: "deploy-staging" });
    expect(recordedNames({ names: { agent: 7, grant: "g" } })).toEqual({ grant: "g" });
    expect(recordedNames({ names: "deploy-bot" })).toEqual({});
    expect(recordedNames(null)).toEqual({});
  });
});

describe("operationsSummary", () => {
  it("lists each operation once, in order, with how many times it ran", () => {
    const deletes = Array.from({ length: 1000 }, () => "aws-s3.DeleteObject");
    expect(operationsSummary({ operations: ["mutation volumeDelete", ...deletes, "mutation serviceCreate", "mutation volumeDelete"] })).toEqual([
      "mutation volumeDelete ×2",
      "aws-s3.DeleteObject ×1000",
      "mutation serviceCreate",
    ]);
  });

  it("is empty for an event without operations", () => {
    expect(operationsSummary({ reason: "r" })).toEqual([]);
    expect(operationsSummary(null)).toEqual([]);
    expect(operationsSummary({ operations: "mutation x" })).toEqual([]);
  });
});

describe("recordedOperations", () => {
  it("records each operation once with its count, in order", () => {
    expect(recordedOperations(["method eth_call", "method eth_call", "aws-s3.DeleteObject ×1000", "method eth_call"])).toEqual({
      operations: ["method eth_call ×3", "aws-s3.DeleteObject ×1000"],
    });
    expect(recordedOperations([])).toBeUndefined();
  });

  it("bounds what an agent's batch can make it hold: 100 names of at most 300 characters, then how many more", () => {
    const distinct = Array.from({ length: 20_000 }, (_, i) => `method eth_${i}`);
    const recorded = recordedOperations(distinct)!.operations;
    expect(recorded).toHaveLength(101);
    expect(recorded.slice(0, 2)).toEqual(["method eth_0", "method eth_1"]);
    expect(recorded.at(-1)).toBe("… 19900 more");
    const long = recordedOperations([`method ${"x".repeat(200_000)}`, `method ${"x".repeat(200_001)}`])!.operations;
    // Cut to the same head, the two names count as one.
    expect(long).toEqual([`method ${"x".repeat(293)}… ×2`]);
  });

  it("reads back through operationsSummary as it was recorded", () => {
    const recorded = recordedOperations(["mutation a", "mutation a", "query b"]);
    expect(operationsSummary(recorded)).toEqual(["mutation a ×2", "query b"]);
  });
});

describe("an event serialised once", () => {
  /** What the JSON says, with absent and null alike (as the database's jsonb_to_recordset reads them). */
  const read = (json: string) => Object.fromEntries(Object.entries(JSON.parse(json) as Record<string, unknown>).filter(([, v]) => v !== null));

  it("is the row's JSON, field for field, for any event (text that must be escaped, details at any depth, absent fields)", () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("\u0000", "\ud800", "a\"b\\c", "é"));
    const json = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, text, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.array(tie("node")), fc.dictionary(text, tie("node"))),
    })).node;
    const event = fc.record(
      {
        kind: fc.constantFrom("proxy" as const, "proxy.response" as const, "token.issued" as const),
        actor: text,
        requestId: text,
        agentId: text,
        path: text,
        method: text,
        decision: fc.constantFrom("allow" as const, "deny" as const),
        reason: text,
        status: fc.integer({ min: 100, max: 599 }),
        latencyMs: fc.nat(),
        details: fc.dictionary(text, json),
        names: fc.record({ agent: text, grant: text }, { requiredKeys: [] }),
      },
      { requiredKeys: ["kind", "actor"] },
    );
    fc.assert(
      fc.property(event, fc.uuid(), (e, eventId) => {
        const { row, json } = serialisedAuditRow(e as AuditInput, eventId);
        expect(read(json)).toEqual(read(JSON.stringify(row)));
        expect(row.contentHash).toBe(contentHash(row));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("a batch as jsonb's binary wire format", () => {
  it("is the version byte 1 and the UTF-8 of the batch's JSON, for any events (text outside ASCII too)", () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("é", "😀", "\u0000", "a\"b"));
    const event = fc.record({ kind: fc.constant("proxy" as const), actor: text, path: text, details: fc.dictionary(text, text) });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 12 }), (events) => {
        const rows = events.map((e, i) => serialisedAuditRow(e, `e${i}`).json);
        const bytes = batchJsonb(rows);
        expect(bytes[0]).toBe(1);
        expect(bytes.subarray(1).toString("utf8")).toBe(batchJsonOf(rows));
      }),
      { numRuns: 500 },
    );
  });
});

describe("agent-controlled text in details", () => {
  it("is escaped at every depth, keys too; details with nothing to escape are stored as they are, not copied", () => {
    const clean = { operations: ["query viewer"], nested: { a: [1, "b", null] } };
    expect(rowOf({ kind: "proxy", actor: "agent:a1", details: clean }, "e1").details).toBe(clean);
    const dirty = { operations: ["mutation a\u0000b"], "k\u0001": { deep: ["x\ud800", 2] } };
    const row = rowOf({ kind: "proxy", actor: "agent:a1", details: dirty }, "e2");
    expect(row.details).toEqual({ operations: ["mutation a\\u0000b"], "k\\u0001": { deep: ["x\\ud800", 2] } });
    expect(dirty.operations[0]).toBe("mutation a\u0000b");
  });
});
