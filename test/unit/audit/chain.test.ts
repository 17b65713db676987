import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  CONTENT_FIELDS,
  contentJson,
  checkpointHash,
  checkpointSignatureValid,
  contentHash,
  deriveCheckpointKey,
  GENESIS_HASH,
  linkHash,
  signCheckpoint,
} from "../../../src/audit/chain.js";

const at = new Date("2026-11-26T10:00:00.123Z");

describe("canonicalJson", () => {
  it.each([
    ["sorts keys at every depth", { b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }, '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}'],
    ["drops undefined properties, as JSONB storage does", { a: undefined, b: 1 }, '{"b":1}'],
    ["writes Dates as ISO strings", { t: at }, '{"t":"2026-11-26T10:00:00.123Z"}'],
    ["keeps unicode as is", { s: "zoë ✓" }, '{"s":"zoë ✓"}'],
    ["escapes what JSON must", { s: 'a"b\\c\n' }, '{"s":"a\\"b\\\\c\\n"}'],
    ["undefined alone is null", undefined, "null"],
  ])("%s", (_name, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it("gives the same text for the same object whatever the key order", () => {
    expect(canonicalJson({ x: 1, y: { a: 1, b: 2 } })).toBe(canonicalJson({ y: { b: 2, a: 1 }, x: 1 }));
  });

  it("is the JSON round trip with sorted keys, for any value (the hashes of events already stored depend on it)", () => {
    // What canonicalJson computed before it was written in one pass: JSON.stringify, JSON.parse, sorted keys.
    const reference = (value: unknown): string => {
      const sorted = (v: unknown): string => {
        if (Array.isArray(v)) return `[${v.map(sorted).join(",")}]`;
        if (v !== null && typeof v === "object") {
          return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${sorted((v as Record<string, unknown>)[k])}`).join(",")}}`;
        }
        return JSON.stringify(v);
      };
      const text = JSON.stringify(value);
      return text === undefined ? "null" : sorted(JSON.parse(text));
    };
    const leaf = fc.oneof(fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.date({ noInvalidDate: true }), fc.constant(Number.NaN));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("node")), fc.dictionary(fc.string(), tie("node"))),
    })).node;
    fc.assert(fc.property(value, (v) => canonicalJson(v) === reference(v)), { numRuns: 2000 });
  });

  it("survives a round trip through JSON (what reading a JSONB column back does)", () => {
    const details = { n: 0.1 + 0.2, big: 1e21, neg: -0, list: [3, 2, 1], nested: { when: at } };
    expect(canonicalJson(JSON.parse(JSON.stringify(details)))).toBe(canonicalJson(details));
  });
});

describe("contentHash", () => {
  const event = { at, actor: "agent:a", kind: "proxy", method: "GET", path: "/v1/x", status: 200, details: { k: 1 } };

  it("is sha256 of the canonical JSON of every content field (a fixed value: events already stored were hashed so)", () => {
    expect(contentHash(event)).toBe("588dd416a5ebbed56094994403ee9e5d861da77aab08bc3b867438c666be1f49");
  });

  it("hashes contentJson, which is canonicalJson of every content field for any event (text, numbers, nulls, details of any shape)", () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom("\u0000", "\ud800", 'a"b\\c', "é", "\u2028"));
    const json = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, text, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(tie("node")), fc.dictionary(text, tie("node"))),
    })).node;
    const value = fc.oneof(text, fc.integer(), fc.double(), fc.constant(null), fc.constant(undefined));
    // Any field may hold anything: stored rows hold text and numbers, but the function must not depend on it.
    const content = fc.record(Object.fromEntries(CONTENT_FIELDS.filter((f) => f !== "at").map((f) => [f, f === "details" ? json : fc.oneof(value, json)])), { requiredKeys: [] });
    const spec = (e: Record<string, unknown>) =>
      canonicalJson(Object.fromEntries(CONTENT_FIELDS.map((f) => [f, f === "at" ? at.toISOString() : (e[f] ?? null)])));
    fc.assert(
      fc.property(content, (fields) => {
        const e = { ...fields, at };
        expect(contentJson(e)).toBe(spec(e));
        expect(contentHash(e)).toBe(createHash("sha256").update(spec(e), "utf8").digest("hex"));
      }),
      { numRuns: 3000 },
    );
  });

  it("treats missing and null alike (a row read back has nulls)", () => {
    expect(contentHash(event)).toBe(contentHash({ ...event, agentId: null, requestId: undefined, latencyMs: null }));
  });

  it("ignores fields outside the content (id and hashes)", () => {
    expect(contentHash(event)).toBe(contentHash({ ...event, id: 7n, hash: "x", prevHash: "y", contentHash: "z" } as typeof event));
  });

  it.each([
    ["actor", { actor: "agent:b" }],
    ["path", { path: "/v1/y" }],
    ["status", { status: 201 }],
    ["time, by a millisecond", { at: new Date(at.getTime() + 1) }],
    ["details", { details: { k: 2 } }],
    ["a null turned into an empty string", { reason: "" }],
  ])("changes when %s changes", (_name, change) => {
    expect(contentHash({ ...event, ...change })).not.toBe(contentHash(event));
  });
});

describe("linkHash", () => {
  it("is sha256 of prevHash|id|contentHash, as the database trigger computes it", () => {
    const expected = createHash("sha256").update(`${GENESIS_HASH}|42|${"a".repeat(64)}`).digest("hex");
    expect(linkHash(GENESIS_HASH, 42n, "a".repeat(64))).toBe(expected);
  });
});

describe("checkpoints", () => {
  const key = deriveCheckpointKey(Buffer.alloc(32, 7));
  const content = {
    at,
    actor: "retention",
    throughId: 100n,
    throughHash: "b".repeat(64),
    prunedEvents: 100,
    keyId: key.keyId,
    prevHash: GENESIS_HASH,
  };

  it("hash covers every field", () => {
    const h = checkpointHash(content);
    for (const change of [{ throughId: 101n }, { throughHash: "c".repeat(64) }, { prunedEvents: 99 }, { prevHash: "d".repeat(64) }]) {
      expect(checkpointHash({ ...content, ...change })).not.toBe(h);
    }
  });

  it("a signature verifies under its key only", () => {
    const h = checkpointHash(content);
    const signature = signCheckpoint(key, h);
    expect(checkpointSignatureValid(key, h, signature)).toBe(true);
    expect(checkpointSignatureValid(deriveCheckpointKey(Buffer.alloc(32, 8)), h, signature)).toBe(false);
    expect(checkpointSignatureValid(key, checkpointHash({ ...content, prunedEvents: 1 }), signature)).toBe(false);
    expect(checkpointSignatureValid(key, h, "00")).toBe(false);
  });

  it("the key is derived, stable, and not the master key", () => {
    const master = Buffer.alloc(32, 7);
    expect(deriveCheckpointKey(master).key.equals(key.key)).toBe(true);
    expect(key.key.equals(master)).toBe(false);
  });
});
