import { describe, expect, it } from "vitest";
import type { ChangeFollower } from "../../../src/change-feed/feed.js";
import { RowCache } from "../../../src/change-feed/row-cache.js";

type Row = { name: string; version: number } | null;

/** A table whose reads the test can hold back, and a feed whose currency the test sets. */
function setup(options: { maxEntries?: number } = {}) {
  const table = new Map<string, number>([["a", 1], ["b", 1], ["c", 1]]);
  const reads: string[] = [];
  let held: (() => void)[] | null = null;
  const snapshot = (key: string): Row => (table.has(key) ? { name: key, version: table.get(key)! } : null);
  const read = async (key: string): Promise<Row> => {
    reads.push(key);
    const value = snapshot(key); // read now, delivered when released
    if (held) await new Promise<void>((release) => held!.push(release));
    return value;
  };
  const feed = { current: true, followers: [] as ChangeFollower[] };
  const cache = new RowCache<Row>(
    { isCurrent: () => feed.current, follow: (f) => void feed.followers.push(f as ChangeFollower) },
    {
      table: "Grant",
      maxEntries: options.maxEntries ?? 100,
      read,
      readMany: async (keys) => {
        reads.push(`many:${keys.join(",")}`);
        return new Map(keys.filter((k) => table.has(k)).map((k) => [k, snapshot(k)]));
      },
      missing: null,
    },
  );
  return {
    table,
    reads,
    cache,
    feed,
    hold: () => (held = []),
    release: () => {
      const pending = held ?? [];
      held = null;
      pending.forEach((r) => r());
    },
  };
}

describe("RowCache", () => {
  it("follows its feed, reads a row once, and shares a read in flight", async () => {
    const t = setup();
    expect(t.feed.followers).toEqual([t.cache]);
    const [x, y] = await Promise.all([t.cache.get("a"), t.cache.get("a")]);
    expect(await t.cache.get("a")).toBe(x);
    expect(y).toBe(x);
    expect(t.reads).toEqual(["a"]);
  });

  it("caches a missing row, and a change to it (a creation) drops it", async () => {
    const t = setup();
    expect(await t.cache.get("new")).toBeNull();
    expect(await t.cache.get("new")).toBeNull();
    t.table.set("new", 1);
    t.cache.changed({ table: "Grant", key: "new" });
    expect(await t.cache.get("new")).toEqual({ name: "new", version: 1 });
    expect(t.reads).toEqual(["new", "new"]);
  });

  it("a change drops its row only; a change to every row (null) drops them all", async () => {
    const t = setup();
    await t.cache.get("a");
    await t.cache.get("b");
    t.table.set("a", 2);
    t.cache.changed({ table: "Grant", key: "a" });
    expect(await t.cache.get("a")).toEqual({ name: "a", version: 2 });
    expect(await t.cache.get("b")).toEqual({ name: "b", version: 1 });
    t.cache.changed({ table: "Grant", key: null });
    await t.cache.get("b");
    expect(t.reads).toEqual(["a", "b", "a", "b"]);
  });

  it("never stores a read that a change overtook", async () => {
    const t = setup();
    t.hold();
    const stale = t.cache.get("a"); // reads version 1...
    t.table.set("a", 2);
    t.cache.changed({ table: "Grant", key: "a" }); // ...but version 2 commits and is announced before the read returns
    t.release();
    expect(await stale).toEqual({ name: "a", version: 1 }); // the call that was already under way
    expect(await t.cache.get("a")).toEqual({ name: "a", version: 2 });
  });

  it("never stores a read that a reload overtook", async () => {
    const t = setup();
    t.hold();
    const stale = t.cache.get("a");
    t.table.set("a", 2);
    await t.cache.reload();
    t.release();
    await stale;
    expect(await t.cache.get("a")).toEqual({ name: "a", version: 2 });
  });

  it("holds nothing while its feed cannot vouch for it", async () => {
    const t = setup();
    await t.cache.get("a");
    t.feed.current = false;
    t.table.set("a", 2);
    expect(await t.cache.get("a")).toEqual({ name: "a", version: 2 });
    expect(await t.cache.get("b")).toEqual({ name: "b", version: 1 });
    t.feed.current = true;
    await t.cache.get("b");
    expect(t.reads).toEqual(["a", "a", "b", "b"]);
  });

  it("refresh re-reads what it holds in one statement, deleted rows included", async () => {
    const t = setup();
    await t.cache.get("a");
    await t.cache.get("b");
    t.table.set("a", 3);
    t.table.delete("b");
    await t.cache.refresh();
    expect(await t.cache.get("a")).toEqual({ name: "a", version: 3 });
    expect(await t.cache.get("b")).toBeNull();
    expect(t.reads).toEqual(["a", "b", "many:a,b"]);
  });

  it("evicts the least recently used row past its bound", async () => {
    const t = setup({ maxEntries: 2 });
    await t.cache.get("a");
    await t.cache.get("b");
    await t.cache.get("a"); // b is now the least recently used
    await t.cache.get("c");
    await t.cache.get("a");
    await t.cache.get("b");
    expect(t.reads).toEqual(["a", "b", "c", "b"]);
  });

  it("does not remember a failed read", async () => {
    const t = setup();
    let fail = true;
    const cache = new RowCache<string>(
      { isCurrent: () => true, follow: () => {} },
      { table: "Grant", maxEntries: 10, read: async () => (fail ? Promise.reject(new Error("db down")) : "ok"), readMany: async () => new Map(), missing: "" },
    );
    await expect(cache.get("k")).rejects.toThrow("db down");
    fail = false;
    expect(await cache.get("k")).toBe("ok");
    expect(t.reads).toEqual([]);
  });

  it("hands out frozen values: callers share them", async () => {
    const t = setup();
    const row = await t.cache.get("a");
    expect(Object.isFrozen(row)).toBe(true);
    expect(() => {
      (row as { version: number }).version = 9;
    }).toThrow(TypeError);
  });
});
