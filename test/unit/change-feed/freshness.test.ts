import { describe, expect, it } from "vitest";
import { Freshness } from "../../../src/change-feed/freshness.js";

const MAX = 5000;

describe("Freshness", () => {
  it("is not current before anything proved it", () => {
    expect(new Freshness().isCurrent(0, MAX)).toBe(false);
  });

  it("a full load proves currency as of its start, for maxStaleness", () => {
    const f = new Freshness();
    f.loaded(1000, f.epoch);
    expect(f.isCurrent(1000 + MAX, MAX)).toBe(true);
    expect(f.isCurrent(1001 + MAX, MAX)).toBe(false);
  });

  it("a ping echo extends currency only once a load that started after the LISTEN has finished", () => {
    const f = new Freshness();
    f.loaded(0, f.epoch); // before any LISTEN
    const epoch = f.listening();
    f.pingEchoed(3000);
    expect(f.currentAsOf).toBe(0);
    f.loaded(4000, epoch);
    f.pingEchoed(6000);
    expect(f.currentAsOf).toBe(6000);
  });

  it("a load that started before the current LISTEN does not make pings count", () => {
    const f = new Freshness();
    const before = f.epoch;
    f.listening();
    f.loaded(1000, before);
    f.pingEchoed(2000);
    expect(f.currentAsOf).toBe(1000);
  });

  it("after the connection is lost, echoes no longer count and currency runs out", () => {
    const f = new Freshness();
    const epoch = f.listening();
    f.loaded(0, epoch);
    f.pingEchoed(1000);
    f.lost();
    f.pingEchoed(2000);
    expect(f.currentAsOf).toBe(1000);
    expect(f.isCurrent(1000 + MAX + 1, MAX)).toBe(false);
  });

  it("recovers after re-LISTEN and a fresh load; a load from the old connection's time does not count for pings", () => {
    const f = new Freshness();
    f.loaded(0, f.listening());
    f.lost();
    const stale = f.epoch;
    const epoch = f.listening();
    f.loaded(500, stale);
    f.pingEchoed(900);
    expect(f.currentAsOf).toBe(500);
    f.loaded(1000, epoch);
    f.pingEchoed(1500);
    expect(f.currentAsOf).toBe(1500);
  });

  it("never goes backwards", () => {
    const f = new Freshness();
    const epoch = f.listening();
    f.loaded(5000, epoch);
    f.pingEchoed(4000);
    f.loaded(3000, epoch);
    expect(f.currentAsOf).toBe(5000);
  });
});
