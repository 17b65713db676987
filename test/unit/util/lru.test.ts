import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LruMap } from "../../../src/util/lru.js";

describe("LruMap", () => {
  it("drops the least recently used entry past its limit; a lookup counts as a use, a peek does not", () => {
    const lru = new LruMap<string, number>(2);
    lru.set("a", 1);
    lru.set("b", 2);
    expect(lru.get("a")).toBe(1); // now b is the least recently used
    lru.set("c", 3);
    expect([...lru.entries()]).toEqual([["a", 1], ["c", 3]]);
    expect(lru.peek("a")).toBe(1); // a stays the least recently used
    lru.set("d", 4);
    expect([...lru.entries()]).toEqual([["c", 3], ["d", 4]]);
  });

  it("a new value for a held key keeps its place; delete and clear drop entries", () => {
    const lru = new LruMap<string, number>(3);
    lru.set("a", 1);
    lru.set("b", 2);
    lru.set("a", 10);
    expect([...lru.entries()]).toEqual([["a", 10], ["b", 2]]);
    lru.delete("a");
    expect(lru.get("a")).toBeUndefined();
    lru.clear();
    expect([...lru.entries()]).toEqual([]);
  });
});

describe("LruMap against a reference", () => {
  it("keeps the same entries in the same order as a Map re-inserted on every use, whatever the operations", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("get" as const), key: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("peek" as const), key: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("set" as const), key: fc.integer({ min: 0, max: 7 }), value: fc.integer() }),
      fc.record({ kind: fc.constant("delete" as const), key: fc.integer({ min: 0, max: 7 }) }),
      fc.constant({ kind: "clear" as const }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
        const lru = new LruMap<number, number>(max);
        const reference = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === "get") {
            const v = reference.get(o.key);
            if (v !== undefined) {
              reference.delete(o.key);
              reference.set(o.key, v);
            }
            expect(lru.get(o.key)).toBe(v);
          } else if (o.kind === "peek") expect(lru.peek(o.key)).toBe(reference.get(o.key));
          else if (o.kind === "set") {
            reference.set(o.key, o.value);
            if (reference.size > max) reference.delete(reference.keys().next().value!);
            lru.set(o.key, o.value);
          } else if (o.kind === "delete") {
            reference.delete(o.key);
            lru.delete(o.key);
          } else {
            reference.clear();
            lru.clear();
          }
          expect([...lru.entries()]).toEqual([...reference.entries()]);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
