import { describe, expect, it } from "vitest";
import { awaitTokenRecord } from "../../../src/revocation/revoke.js";

/** IssuedToken as the revocation sees it: `recordedAfter` lookups find nothing, then the record. */
function tokens(recordedAfter: number) {
  let lookups = 0;
  const prisma = {
    issuedToken: { findUnique: async () => (++lookups > recordedAfter ? { jti: "j1" } : null) },
  } as unknown as Parameters<typeof awaitTokenRecord>[0];
  return { prisma, lookups: () => lookups };
}

describe("a revocation by jti waiting for the token's record", () => {
  it("goes on at once for a recorded token, without waiting for this broker's log", async () => {
    const { prisma, lookups } = tokens(0);
    let flushed = false;
    expect(await awaitTokenRecord(prisma, { flush: async () => (flushed = true) }, "j1")).toBe(true);
    expect([flushed, lookups()]).toEqual([false, 1]);
  });

  it("waits for this broker's own log, then for a replica's statement, until the record is there", async () => {
    const { prisma, lookups } = tokens(3);
    let flushed = false;
    expect(await awaitTokenRecord(prisma, { flush: async () => (flushed = true) }, "j1")).toBe(true);
    expect([flushed, lookups()]).toEqual([true, 4]);
  });

  it("gives up after its time for a jti never recorded (the caller then answers 404)", async () => {
    const { prisma, lookups } = tokens(Number.POSITIVE_INFINITY);
    const started = performance.now();
    expect(await awaitTokenRecord(prisma, { flush: async () => true }, "nope", 200)).toBe(false);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(195);
    expect(waited).toBeLessThan(1_000);
    expect(lookups()).toBeGreaterThan(2);
  });
});
