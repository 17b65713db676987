import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BROKER_GLIBC_TUNABLES, mallocTunablesEnvironment, runsOnGlibc } from "../../../bin/malloc-tunables.js";

const runScript = (env: NodeJS.ProcessEnv) => execFileSync(process.execPath, ["bin/malloc-tunables.js"], { encoding: "utf8", env });
const LD_SO = "/lib64/ld-linux-x86-64.so.2";

describe("malloc tunables", () => {
  it("prints the assignment for npm start's `env`, and nothing when GLIBC_TUNABLES is already set (the operator's own is kept)", () => {
    expect(runScript({ PATH: process.env.PATH })).toBe(`GLIBC_TUNABLES=${BROKER_GLIBC_TUNABLES}`);
    expect(runScript({ PATH: process.env.PATH, GLIBC_TUNABLES: "glibc.malloc.tcache_count=0" })).toBe("");
    expect(mallocTunablesEnvironment({ GLIBC_TUNABLES: "" })).toEqual({});
    expect(mallocTunablesEnvironment({})).toEqual({ GLIBC_TUNABLES: BROKER_GLIBC_TUNABLES });
  });

  it.runIf(existsSync(LD_SO))("are names and values this glibc takes (it ignores misspelt ones silently)", () => {
    const listed = execFileSync(LD_SO, ["--list-tunables"], { encoding: "utf8", env: { GLIBC_TUNABLES: BROKER_GLIBC_TUNABLES } });
    expect(listed).toMatch(/^glibc\.malloc\.arena_max: 0x2 /m);
    expect(listed).toMatch(/^glibc\.malloc\.mmap_threshold: 0x20000 /m);
  });

  it.runIf(existsSync(LD_SO))("knows this process runs on glibc", () => {
    expect(runsOnGlibc()).toBe(true);
  });
});
