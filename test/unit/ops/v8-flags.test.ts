import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { brokerV8Flags } from "../../../bin/v8-flags.js";

describe("brokerV8Flags", () => {
  it("counts external memory within V8's global limit from Node 24 on, and asks nothing of older Nodes", () => {
    expect(brokerV8Flags("20.19.0")).toEqual([]);
    expect(brokerV8Flags("v22.11.0")).toEqual([]);
    expect(brokerV8Flags("v24.22.3")).toEqual(["--external-memory-accounted-in-global-limit"]);
    expect(brokerV8Flags("26.0.0")).toEqual(["--external-memory-accounted-in-global-limit"]);
  });

  it("prints this Node's flags as a script, for npm start's command line", () => {
    expect(execFileSync(process.execPath, ["bin/v8-flags.js"], { encoding: "utf8" })).toBe(brokerV8Flags().join(" "));
  });
});
