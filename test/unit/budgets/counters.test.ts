import { describe, expect, it } from "vitest";
import { countersFor, refusalReason } from "../../../src/budgets/budgets.js";

const expiresAt = new Date("2030-01-01T00:15:00Z");
// 12:00:45 into a minute: the per-minute window reopens in 15 s.
const now = Date.UTC(2030, 0, 1, 0, 0, 45);
const minute = Math.floor(now / 60_000);
const call = { jti: "j1", ancestors: [] as string[], tokenExpiresAt: expiresAt, grantId: "g1", destructive: 0, now };

describe("countersFor", () => {
  it("takes nothing without budgets", () => {
    expect(countersFor(null, call)).toEqual([]);
    expect(countersFor({}, call)).toEqual([]);
  });

  it("takes one unit per limit, sorted by key so concurrent calls lock in one order", () => {
    const takes = countersFor(
      { perToken: { requestsPerMinute: 10, maxCalls: 100 }, perGrant: { requestsPerMinute: 50, maxCalls: 5000, maxDestructiveCalls: 3 } },
      call,
    );
    expect(takes).toEqual([
      { key: "grant:g1:calls", limit: "perGrant.maxCalls", window: 0, amount: 1, capacity: 5000, expiresAt: null, retryAfterSeconds: null },
      { key: "grant:g1:rpm", limit: "perGrant.requestsPerMinute", window: minute, amount: 1, capacity: 50, expiresAt: null, retryAfterSeconds: 15 },
      { key: "token:j1:calls", limit: "perToken.maxCalls", window: 0, amount: 1, capacity: 100, expiresAt, retryAfterSeconds: null },
      { key: "token:j1:rpm", limit: "perToken.requestsPerMinute", window: minute, amount: 1, capacity: 10, expiresAt, retryAfterSeconds: 15 },
    ]);
  });

  it("destructive calls take one unit per destructive operation, and only then", () => {
    const budgets = { perToken: { maxDestructiveCalls: 5 } };
    expect(countersFor(budgets, call)).toEqual([]);
    expect(countersFor(budgets, { ...call, destructive: 3 })).toEqual([
      { key: "token:j1:destructive", limit: "perToken.maxDestructiveCalls", window: 0, amount: 3, capacity: 5, expiresAt, retryAfterSeconds: null },
    ]);
  });

  it("a zero destructive budget is still a counter (the database refuses any amount over it)", () => {
    expect(countersFor({ perGrant: { maxDestructiveCalls: 0 } }, { ...call, destructive: 1 })[0]).toMatchObject({ capacity: 0, amount: 1 });
  });

  it("Retry-After is at least a second, at the very end of a window", () => {
    const end = (minute + 1) * 60_000 - 1;
    expect(countersFor({ perToken: { requestsPerMinute: 1 } }, { ...call, now: end })[0]!.retryAfterSeconds).toBe(1);
  });

  it("a token exchanged from others also spends each ancestor's per-token budget, never the grant's twice", () => {
    const takes = countersFor({ perToken: { maxCalls: 10, maxDestructiveCalls: 2 }, perGrant: { maxCalls: 100 } }, { ...call, ancestors: ["j0", "jp"], destructive: 1 });
    const ancestorsExpireBy = new Date(now + 3600 * 1000);
    expect(takes).toEqual([
      { key: "grant:g1:calls", limit: "perGrant.maxCalls", window: 0, amount: 1, capacity: 100, expiresAt: null, retryAfterSeconds: null },
      { key: "token:j0:calls", limit: "perToken.maxCalls of ancestor token j0", window: 0, amount: 1, capacity: 10, expiresAt: ancestorsExpireBy, retryAfterSeconds: null },
      { key: "token:j0:destructive", limit: "perToken.maxDestructiveCalls of ancestor token j0", window: 0, amount: 1, capacity: 2, expiresAt: ancestorsExpireBy, retryAfterSeconds: null },
      { key: "token:j1:calls", limit: "perToken.maxCalls", window: 0, amount: 1, capacity: 10, expiresAt, retryAfterSeconds: null },
      { key: "token:j1:destructive", limit: "perToken.maxDestructiveCalls", window: 0, amount: 1, capacity: 2, expiresAt, retryAfterSeconds: null },
      { key: "token:jp:calls", limit: "perToken.maxCalls of ancestor token jp", window: 0, amount: 1, capacity: 10, expiresAt: ancestorsExpireBy, retryAfterSeconds: null },
      { key: "token:jp:destructive", limit: "perToken.maxDestructiveCalls of ancestor token jp", window: 0, amount: 1, capacity: 2, expiresAt: ancestorsExpireBy, retryAfterSeconds: null },
    ]);
  });
});

describe("refusalReason", () => {
  it("says a budget is spent only when a call of one unit found it so", () => {
    expect(refusalReason({ limit: "perToken.maxCalls", capacity: 5, amount: 1 })).toBe("perToken.maxCalls (5) is spent");
    // A bulk delete of 1,000 objects under a budget of 5 deletes none of which was spent.
    expect(refusalReason({ limit: "perGrant.maxDestructiveCalls", capacity: 5, amount: 1000 })).toBe(
      "perGrant.maxDestructiveCalls (5) has fewer than the 1000 units this call takes left",
    );
  });
});
