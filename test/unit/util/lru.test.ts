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
