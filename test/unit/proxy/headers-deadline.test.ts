import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HeadersDeadline } from "../../../src/proxy/upstream-timeouts.js";

const MS = 1_000;

/**
 * The headers deadline on a clock of the test's own: timers run on vitest's fake clock, while
 * performance.now() (the real clock HeadersDeadline checks them against) is set by hand, so that a
 * timer can fire before the deadline, as Node's do when a busy tick leaves the loop's cached clock behind.
 */
describe("HeadersDeadline", () => {
  let now = 0;
  const aborted: Error[] = [];
  const deadline = () => {
    const handler = new HeadersDeadline(
      {
        onConnect: () => {},
        onHeaders: () => true,
        onData: () => true,
        onComplete: () => {},
        onError: () => {},
      },
      MS,
    );
    handler.onConnect((err) => aborted.push(err!));
    return handler;
  };
  /** Both clocks move by `ms`, or only the timers' (`lag` ms behind the real clock's move). */
  const advance = (ms: number, lag = 0) => {
    now += ms - lag;
    vi.advanceTimersByTime(ms);
  };

  beforeEach(() => {
    now = 0;
    aborted.length = 0;
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    vi.spyOn(performance, "now").mockImplementation(() => now);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it("aborts with HeadersTimeoutError once the limit passes without headers", () => {
    deadline();
    advance(MS - 1);
    expect(aborted).toEqual([]);
    advance(1);
    expect(aborted.map((e) => e.name)).toEqual(["HeadersTimeoutError"]);
  });

  it("a timer that fires early waits for what is left", () => {
    deadline();
    advance(MS, 5);
    expect(aborted).toEqual([]);
    advance(5);
    expect(aborted).toHaveLength(1);
  });

  it("each request chunk sent starts the wait again", () => {
    const handler = deadline();
    advance(MS - 100);
    handler.onBodySent(Buffer.from("x"));
    advance(MS - 100);
    handler.onRequestSent();
    advance(MS - 1);
    expect(aborted).toEqual([]);
    advance(1);
    expect(aborted).toHaveLength(1);
  });

  it("a chunk sent while an early timer waits for its last ms moves the deadline too", () => {
    const handler = deadline();
    // The timer fires 5 ms early and is re-armed for those 5 ms; a chunk goes out meanwhile.
    advance(MS, 5);
    advance(2);
    handler.onBodySent(Buffer.from("x"));
    advance(5);
    expect(aborted).toEqual([]);
    advance(MS - 6);
    expect(aborted).toEqual([]);
    advance(1);
    expect(aborted).toHaveLength(1);
  });

  it("response headers end the wait", () => {
    const handler = deadline();
    advance(MS - 1);
    handler.onHeaders(200, [], () => {}, "OK");
    advance(10 * MS);
    expect(aborted).toEqual([]);
  });
});
