import { describe, expect, it } from "vitest";
import { activeKey, keysToRetire, rotationDue, type LiveKey } from "../../../src/signing-keys/lifecycle.js";

const T = Date.parse("2030-01-01T00:00:00Z");
const at = (ms: number) => new Date(T + ms);
const key = (kid: string, createdMs: number): LiveKey => ({ kid, createdAt: at(createdMs) });
const DAY = 86_400_000;

describe("activeKey", () => {
  it("is the newest live key, whatever the order", () => {
    expect(activeKey([key("a", 0), key("c", 2), key("b", 1)])?.kid).toBe("c");
    expect(activeKey([])).toBeUndefined();
  });
});

describe("rotationDue", () => {
  const cases: [string, LiveKey[], number, boolean][] = [
    ["no key at all", [], 0, true],
    ["a fresh key", [key("a", 0)], DAY, false],
    ["just short of the schedule", [key("a", 0)], 30 * DAY - 1, false],
    ["exactly on schedule", [key("a", 0)], 30 * DAY, true],
    ["overdue", [key("a", 0)], 90 * DAY, true],
    ["an old key beside a fresh one: the fresh one counts", [key("old", 0), key("new", 29 * DAY)], 31 * DAY, false],
  ];
  it.each(cases)("%s → %s", (_name, live, nowMs, due) => {
    expect(rotationDue(live, at(nowMs), 30 * DAY)).toBe(due);
  });
});

describe("keysToRetire", () => {
  const options = { graceMs: 1000, leewaySeconds: 5 };
  const live = [key("old", 0), key("new", 10_000)];

  it("never the active key, even with nothing signed", () => {
    expect(keysToRetire([key("only", 0)], new Map(), at(100 * DAY), options)).toEqual([]);
    expect(keysToRetire(live, new Map(), at(100 * DAY), options)).toEqual(["old"]);
  });

  // [name, last expiry of the old key's tokens (ms offset) or null, now (ms offset), retired?]
  const cases: [string, number | null, number, boolean][] = [
    ["superseded within the grace: replicas may still sign with it", null, 10_999, false],
    ["superseded past the grace, never signed anything", null, 11_000, true],
    ["a token of it still live", 60_000, 30_000, false],
    ["its last token expired, but within the leeway", 60_000, 65_000, false],
    ["its last token expired beyond the leeway", 60_000, 65_001, true],
  ];
  it.each(cases)("%s → %s", (_name, expiryMs, nowMs, retired) => {
    const lastExpiry = new Map(expiryMs === null ? [] : [["old", at(expiryMs)] as const]);
    expect(keysToRetire(live, lastExpiry, at(nowMs), options)).toEqual(retired ? ["old"] : []);
  });

  it("a key's grace runs from when the next newer key replaced it, not from the newest", () => {
    const three = [key("a", 0), key("b", 10_000), key("c", 20_000)];
    expect(keysToRetire(three, new Map(), at(11_500), options)).toEqual(["a"]);
    expect(keysToRetire(three, new Map(), at(21_500), options)).toEqual(["b", "a"]);
  });

  it("other keys' tokens do not hold a key back", () => {
    expect(keysToRetire(live, new Map([["new", at(99 * DAY)]]), at(20_000), options)).toEqual(["old"]);
  });
});
