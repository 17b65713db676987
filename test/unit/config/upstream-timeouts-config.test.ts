import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config/config.js";

describe("upstream timeouts", () => {
  it("each defaults to KEYWARD_UPSTREAM_TIMEOUT_MS, itself 30 s", () => {
    expect(loadConfig({}).upstreamTimeouts).toEqual({ connectMs: 30_000, headersMs: 30_000, bodyIdleMs: 30_000 });
    expect(loadConfig({ KEYWARD_UPSTREAM_TIMEOUT_MS: "5000" }).upstreamTimeouts).toEqual({ connectMs: 5000, headersMs: 5000, bodyIdleMs: 5000 });
  });

  it("each is set on its own", () => {
    const config = loadConfig({
      KEYWARD_UPSTREAM_TIMEOUT_MS: "5000",
      KEYWARD_UPSTREAM_CONNECT_TIMEOUT_MS: "1000",
      KEYWARD_UPSTREAM_HEADERS_TIMEOUT_MS: "2000",
      KEYWARD_UPSTREAM_BODY_IDLE_TIMEOUT_MS: "60000",
    });
    expect(config.upstreamTimeouts).toEqual({ connectMs: 1000, headersMs: 2000, bodyIdleMs: 60_000 });
  });

  it.each(["KEYWARD_UPSTREAM_CONNECT_TIMEOUT_MS", "KEYWARD_UPSTREAM_HEADERS_TIMEOUT_MS", "KEYWARD_UPSTREAM_BODY_IDLE_TIMEOUT_MS"])(
    "refuses a %s that is not a positive whole number of milliseconds",
    (name) => {
      for (const value of ["0", "-1", "1.5", "soon"]) expect(() => loadConfig({ [name]: value })).toThrow(name);
    },
  );
});
