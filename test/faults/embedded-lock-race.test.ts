import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { title } from "../security/cases.js";

/** Processes racing on one stale lock, and how many times: enough that a read-then-unlink break loses often. */
const RACERS = 6;
const ROUNDS = 20;

// Each racer is a process of its own, as brokers are, calling the compiled lock function at one agreed moment.
const RACER = `
import { takeDataDirLock } from ${JSON.stringify(resolve("build/src/db/data-dir-lock.js"))};
const [path, startAt] = process.argv.slice(1);
while (Date.now() < Number(startAt)) {}
let release;
try {
  release = takeDataDirLock(path);
} catch (err) {
  process.stdout.write(err.message.startsWith("another Keyward (pid ") ? "refused" : "error: " + err.message);
  process.exit(0);
}
process.stdout.write("took");
// Held until every racer has tried, however late a loaded machine started it.
process.stdin.resume();
process.stdin.on("end", () => { release(); process.exit(0); });
`;

/** Each racer's outcome once all have one; then the winners release the data dir and all exit. */
async function race(lock: string, startAt: number): Promise<string[]> {
  const racers = Array.from({ length: RACERS }, () => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", RACER, lock, String(startAt)], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stderr.on("data", (c) => (out += c));
    const exited = new Promise<void>((done) => child.on("exit", () => done()));
    const outcome = new Promise<string>((done) => {
      child.stdout.on("data", (c) => done(String(c).trim()));
      void exited.then(() => done(`exited: ${out.trim()}`));
    });
    return { child, exited, outcome };
  });
  const outcomes = await Promise.all(racers.map((r) => r.outcome));
  for (const r of racers) r.child.stdin.end();
  await Promise.all(racers.map((r) => r.exited));
  return outcomes;
}

describe("faults: the embedded data dir's lock", () => {
  // Under the clone, not the system's mode-0700 temp folder (as root, the embedded server's user must enter it).
  mkdirSync(resolve("tmp"), { recursive: true });
  const base = mkdtempSync(join(resolve("tmp"), "lock-race-"));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it(title("FLT-60"), { timeout: 60_000 }, async () => {
    // A pid no process has any more: the broker that left the lock.
    const dead = spawnSync("true").pid!;
    for (let round = 0; round < ROUNDS; round++) {
      const dir = join(base, String(round));
      mkdirSync(dir);
      const lock = join(dir, "keyward.pid");
      writeFileSync(lock, `${dead}\n`);
      const startAt = Date.now() + 700; // after every racer has loaded
      const outcomes = await race(lock, startAt);
      expect(outcomes.filter((o) => o !== "took" && o !== "refused"), `round ${round}: racers that failed otherwise`).toEqual([]);
      expect(outcomes.filter((o) => o === "took"), `round ${round}: racers that took the data dir`).toHaveLength(1);
    }
  });
});
