import { describe, expect, it } from "vitest";
import { KeywardError } from "../../../../src/http/errors.js";
import { refreshAt, REJECTED_TOKEN_DROP_INTERVAL_MS, TokenCache, type ExpiringToken } from "../../../../src/upstreams/credentials/token-cache.js";

describe("refreshAt", () => {
  it.each([
    // [obtained at, expires at, refresh at]
    [0, 3_600_000, 3_540_000], // an hour: a minute early
    [0, 300_000, 240_000], // five minutes: a minute early (= a fifth)
    [0, 60_000, 48_000], // a minute: a fifth early
    [0, 2_000, 1_600],
    [1_000, 11_000, 9_000],
  ])("obtained %d, expires %d → refresh at %d", (obtained, expires, due) => {
    expect(refreshAt(obtained, expires)).toBe(due);
  });
});

/** A cache on a clock the test moves, and an endpoint that counts calls and can be made to fail or stall. */
function setup() {
  const clock = { now: 0 };
  const cache = new TokenCache(() => clock.now);
  let issued = 0;
  let failing = false;
  let release: (() => void) | undefined;
  let stalled = false;
  const obtain = async (): Promise<ExpiringToken> => {
    issued += 1;
    const n = issued;
    if (stalled) await new Promise<void>((resolve) => (release = resolve));
    if (failing) throw new KeywardError(502, "upstream_credential_unavailable", "down");
    return { value: `tok-${n}`, expiresAt: clock.now + 10_000 };
  };
  return {
    clock,
    get: (key = "k") => cache.get(key, obtain),
    issued: () => issued,
    fail: (on: boolean) => (failing = on),
    stall: () => (stalled = true),
    release: () => {
      stalled = false;
      release?.();
    },
  };
}

describe("TokenCache", () => {
  it("obtains a token once and reuses it until its refresh time", async () => {
    const t = setup();
    expect(await t.get()).toBe("tok-1");
    t.clock.now = 7_999;
    expect(await t.get()).toBe("tok-1");
    expect(t.issued()).toBe(1);
    // refresh at 8 000 (a fifth of 10 s early), while tok-1 is still valid
    t.clock.now = 8_000;
    expect(await t.get()).toBe("tok-2");
    expect(t.issued()).toBe(2);
  });

  it("concurrent callers share one call to the token endpoint", async () => {
    const t = setup();
    t.stall();
    const waiting = Array.from({ length: 50 }, () => t.get());
    t.release();
    expect(new Set(await Promise.all(waiting))).toEqual(new Set(["tok-1"]));
    expect(t.issued()).toBe(1);
  });

  it("concurrent callers share one refresh too", async () => {
    const t = setup();
    await t.get();
    t.clock.now = 9_000;
    t.stall();
    const waiting = Array.from({ length: 50 }, () => t.get());
    t.release();
    expect(new Set(await Promise.all(waiting))).toEqual(new Set(["tok-2"]));
    expect(t.issued()).toBe(2);
  });

  it("a failed refresh fails every waiting caller and never falls back to the old token", async () => {
    const t = setup();
    expect(await t.get()).toBe("tok-1");
    t.clock.now = 9_000; // tok-1 is due for refresh but not expired
    t.fail(true);
    t.stall();
    const waiting = Array.from({ length: 5 }, () => t.get());
    t.release();
    for (const result of await Promise.allSettled(waiting)) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toMatchObject({ status: 502 });
    }
    expect(t.issued()).toBe(2);
    // the failure is not cached: the next call tries again, still without the old token
    await expect(t.get()).rejects.toMatchObject({ status: 502 });
    expect(t.issued()).toBe(3);
    t.fail(false);
    expect(await t.get()).toBe("tok-4");
  });

  it("refuses a token that is already due when it arrives", async () => {
    const clock = { now: 0 };
    const cache = new TokenCache(() => clock.now);
    await expect(cache.get("k", async () => ({ value: "old", expiresAt: 0 }))).rejects.toMatchObject({
      status: 502,
      code: "upstream_credential_unavailable",
    });
    // a slow endpoint: the token arrives after its refresh time
    const slowly = async () => {
      clock.now = 900;
      return { value: "slow", expiresAt: 1_000 };
    };
    await expect(cache.get("k", slowly)).rejects.toMatchObject({ status: 502 });
  });

  it("keeps tokens for different keys apart", async () => {
    const t = setup();
    expect(await t.get("a")).toBe("tok-1");
    expect(await t.get("b")).toBe("tok-2");
    expect(await t.get("a")).toBe("tok-1");
    expect(t.issued()).toBe(2);
  });
});

describe("TokenCache.minted (for response redaction)", () => {
  it("remembers every token still valid, as one array per set", async () => {
    const clock = { now: 0 };
    const cache = new TokenCache(() => clock.now);
    let n = 0;
    const obtain = async (): Promise<ExpiringToken> => ({ value: `tok-${++n}`, expiresAt: clock.now + 10_000 });
    expect(cache.minted).toEqual([]);
    await cache.get("a", obtain);
    const first = cache.minted;
    await cache.get("a", obtain); // cached: no new token, same array
    expect(cache.minted).toBe(first);
    await cache.get("b", obtain);
    expect(cache.minted).toEqual(["tok-1", "tok-2"]);
    clock.now = 9_000; // past a's refresh time: a new token, the old one still valid upstream
    await cache.get("a", obtain);
    expect(cache.minted).toEqual(["tok-1", "tok-2", "tok-3"]);
    clock.now = 30_000; // the first three expired
    await cache.get("a", obtain);
    expect(cache.minted).toEqual(["tok-4"]);
  });

  it("remembers a token until its validUntil when that is later than its expiry (TOK-41)", async () => {
    const clock = { now: 0 };
    const cache = new TokenCache(() => clock.now);
    let n = 0;
    const obtain = async (): Promise<ExpiringToken> => ({ value: `tok-${++n}`, expiresAt: clock.now + 60_000, validUntil: clock.now + 600_000 });
    await cache.get("a", obtain);
    clock.now = 120_000; // tok-1 no longer used, still accepted upstream
    await cache.get("a", obtain);
    expect(cache.minted).toEqual(["tok-1", "tok-2"]);
    clock.now = 800_000; // tok-1 and tok-2 past validUntil
    await cache.get("a", obtain);
    expect(cache.minted).toEqual(["tok-3"]);
  });

  it("never forgets a token it still hands out, however many other scopes minted one since", async () => {
    const cache = new TokenCache(() => 0);
    let n = 0;
    // A GitHub App upstream with a grant per repository: one installation token per scope, each an hour.
    const obtain = async (): Promise<ExpiringToken> => ({ value: `ghs_scope_token_${++n}`, expiresAt: 3_600_000 });
    const first = await cache.get("repo-0", obtain);
    for (let i = 1; i <= 300; i++) await cache.get(`repo-${i}`, obtain);
    expect(await cache.get("repo-0", obtain)).toBe(first);
    expect(cache.minted).toContain(first);
    expect(cache.minted).toHaveLength(301);
  });
});

describe("TokenCache.dropRejected", () => {
  const hourLong = () => {
    const clock = { now: 0 };
    const cache = new TokenCache(() => clock.now);
    let issued = 0;
    const get = () => cache.get("", async () => ({ value: `tok-${++issued}`, expiresAt: clock.now + 3_600_000 }));
    return { clock, cache, get };
  };

  it("drops the refused token so the next call obtains another, which it still redacts", async () => {
    const { cache, get } = hourLong();
    expect(await get()).toBe("tok-1");
    expect(cache.dropRejected("tok-1")).toBe(true);
    expect(await get()).toBe("tok-2");
    expect(cache.minted).toEqual(["tok-1", "tok-2"]);
  });

  it("leaves a newer token alone: a call refused with the one it replaced does not drop it", async () => {
    const { clock, cache, get } = hourLong();
    await get();
    cache.dropRejected("tok-1");
    expect(await get()).toBe("tok-2");
    clock.now += REJECTED_TOKEN_DROP_INTERVAL_MS;
    // A call sent with tok-1 before the drop, answered now.
    expect(cache.dropRejected("tok-1")).toBe(false);
    expect(await get()).toBe("tok-2");
  });

  it("drops only the key whose token was refused, among tokens narrowed per scope", async () => {
    const clock = { now: 0 };
    const cache = new TokenCache(() => clock.now);
    let issued = 0;
    const get = (key: string) => cache.get(key, async () => ({ value: `tok-${++issued}`, expiresAt: clock.now + 3_600_000 }));
    expect([await get("repo-a"), await get("repo-b")]).toEqual(["tok-1", "tok-2"]);
    expect(cache.dropRejected("tok-2")).toBe(true);
    expect([await get("repo-a"), await get("repo-b")]).toEqual(["tok-1", "tok-3"]);
  });

  it(`drops at most once per ${REJECTED_TOKEN_DROP_INTERVAL_MS} ms`, async () => {
    const { clock, cache, get } = hourLong();
    await get();
    expect(cache.dropRejected("tok-1")).toBe(true);
    expect(await get()).toBe("tok-2");
    clock.now += REJECTED_TOKEN_DROP_INTERVAL_MS - 1;
    expect(cache.dropRejected("tok-2")).toBe(false);
    expect(await get()).toBe("tok-2");
    clock.now += 1;
    expect(cache.dropRejected("tok-2")).toBe(true);
    expect(await get()).toBe("tok-3");
  });
});
