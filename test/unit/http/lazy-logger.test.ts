import { describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { lazyChildLogger } from "../../../src/http/lazy-logger.js";

/** A pino logger writing JSON lines into an array, with a spy on child(). */
function parentLogger(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const parent = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const child = vi.spyOn(parent, "child");
  return { parent, lines, child };
}

describe("lazyChildLogger", () => {
  it("makes no child while nothing is logged, or only at levels that are off", () => {
    const { parent, lines, child } = parentLogger("info");
    const log = lazyChildLogger(parent, { reqId: "r-1" }, {});
    log.debug({ code: "x" }, "request refused");
    log.trace("nothing");
    expect(child).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    expect(log.level).toBe("info");
  });

  it("writes what an eager child would: the bindings on every line, made once", () => {
    const { parent, lines, child } = parentLogger("debug");
    const log = lazyChildLogger(parent, { reqId: "r-2" }, {});
    log.info({ status: 200 }, "request completed");
    log.debug("request refused");
    log.error(new Error("boom"), "request failed");
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines.map((l) => [l.reqId, l.msg])).toEqual([
      ["r-2", "request completed"],
      ["r-2", "request refused"],
      ["r-2", "request failed"],
    ]);
    expect(lines[0]!.status).toBe(200);
    expect((lines[2]!.err as { message: string }).message).toBe("boom");
    // Its own children carry both bindings.
    log.child({ part: "forward" }).warn("slow");
    expect(lines.at(-1)).toMatchObject({ reqId: "r-2", part: "forward", msg: "slow" });
  });

  it("a route's own level, or one set on the request's logger, decides instead of the parent's", () => {
    const { parent, lines } = parentLogger("info");
    const routeLevel = lazyChildLogger(parent, { reqId: "r-3" }, { level: "debug" });
    routeLevel.debug("shown");
    expect(lines.map((l) => l.msg)).toEqual(["shown"]);
    const quieted = lazyChildLogger(parent, { reqId: "r-4" }, {});
    quieted.level = "error";
    quieted.info("hidden");
    quieted.error("kept");
    expect(lines.map((l) => l.msg)).toEqual(["shown", "kept"]);
    expect(parent.level).toBe("info");
  });
});
