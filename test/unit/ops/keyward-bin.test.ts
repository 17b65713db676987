import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// The compiled CLI itself runs in the e2e tests (test/helpers/cli.ts), after the suite builds it.
describe("bin/keyward.js", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-bin-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("says how to build the compiled CLI when build/ is missing, and exits 1", () => {
    mkdirSync(join(dir, "bin"));
    copyFileSync("bin/keyward.js", join(dir, "bin", "keyward.js"));
    const run = spawnSync(process.execPath, [join(dir, "bin", "keyward.js"), "--help"], { encoding: "utf8" });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("npm run build:server");
  });
});
