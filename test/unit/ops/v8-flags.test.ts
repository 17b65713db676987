import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { brokerV8Flags } from "../../../bin/v8-flags.js";

describe("brokerV8Flags", () => {
  it("bounds the old generation's growth before Node 24; from Node 24 on, counts external memory within V8's global limit; on both, keeps the young generation to two 8 MiB semi-spaces", () => {
    const beforeNode24 = ["--heap-growing-percent=100", "--max-semi-space-size=8"];
    expect(brokerV8Flags("20.19.0")).toEqual(beforeNode24);
    expect(brokerV8Flags("v22.11.0")).toEqual(beforeNode24);
    const node24 = ["--external-memory-accounted-in-global-limit", "--max-semi-space-size=8"];
    expect(brokerV8Flags("v24.22.3")).toEqual(node24);
    expect(brokerV8Flags("26.0.0")).toEqual(node24);
  });

  it("are flags this Node accepts (node refuses an unknown one, so a V8 that drops one fails here, not at start)", () => {
    expect(execFileSync(process.execPath, [...brokerV8Flags(), "-e", "process.stdout.write('ok')"], { encoding: "utf8" })).toBe("ok");
  });

  it("prints this Node's flags as a script, for npm start's command line", () => {
    expect(execFileSync(process.execPath, ["bin/v8-flags.js"], { encoding: "utf8" })).toBe(brokerV8Flags().join(" "));
  });
});
