import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { runsOnGlibc } from "../../bin/malloc-tunables.js";
import { loadConfig } from "../../src/config/config.js";
import { MAIN } from "../helpers/broker-process.js";
import { freePort, startTempCluster, type TempCluster } from "../helpers/pg-cluster.js";
import { waitFor } from "../helpers/wait.js";

/**
 * MAIN as node runs it; with `startScript`, through `npm start`'s own command line (package.json), which
 * gives node its V8 flags and glibc's malloc settings. Either way node itself gets the signals: the shell
 * and `env` exec it.
 */
function run(env: Record<string, string>, options: { startScript?: boolean } = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const command: [string, string[]] = options.startScript
    ? ["sh", ["-c", (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: { start: string } }).scripts.start]]
    : [process.execPath, [MAIN]];
  const child = spawn(...command, {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/**
 * Waits for a broker to log that it listens. One that exits first (its port taken, say) ends the wait at
 * once with its output, instead of the wait timing out.
 */
function listening(p: ReturnType<typeof run>, what: string, withinMs: number): Promise<boolean> {
  return waitFor(
    () => {
      if (p.child.exitCode !== null) throw new Error(`${what} exited with ${p.child.exitCode}: ${p.output()}`);
      return /Server listening/.test(p.output());
    },
    withinMs,
    () => `${what} to listen; output so far: ${p.output().slice(-2000)}`,
    50,
  );
}

describe("configuration", () => {
  it.each([
    [{ PORT: "not-a-port" }, /PORT/],
    [{ PORT: "70000" }, /PORT/],
    [{ DATABASE_URL: "mysql://x" }, /DATABASE_URL/],
    [{ DATABASE_URL: "postgresql://postgres@127.0.0.1/test" }, /KEYWARD_MASTER_KEY: required/],
    [{ KEYWARD_ADMIN_KEY: "short" }, /KEYWARD_ADMIN_KEY/],
    [{ KEYWARD_MASTER_KEY: randomBytes(31).toString("base64") }, /KEYWARD_MASTER_KEY: must be 32 bytes, base64-encoded/],
    [{ KEYWARD_MASTER_KEY: "" }, /KEYWARD_MASTER_KEY: must be 32 bytes, base64-encoded/],
    [{ KEYWARD_MASTER_KEY_PREVIOUS: `"${randomBytes(32).toString("base64")}"` }, /KEYWARD_MASTER_KEY_PREVIOUS: must be 32 bytes, base64-encoded/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL/],
    [{ KEYWARD_REQUEST_TIMEOUT_MS: "0" }, /KEYWARD_REQUEST_TIMEOUT_MS/],
    [{ KEYWARD_REQUEST_TIMEOUT_MS: "1000", KEYWARD_HEADERS_TIMEOUT_MS: "5000" }, /KEYWARD_HEADERS_TIMEOUT_MS: must not exceed/],
  ])("refuses %o with a clear message", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 8080, host: "127.0.0.1", dataDir: "./.keyward", issuer: "http://127.0.0.1:8080", logLevel: "info" });
    expect(c).toMatchObject({ requestTimeoutMs: 120_000, headersTimeoutMs: 30_000 });
    expect(loadConfig({ KEYWARD_REQUEST_TIMEOUT_MS: "2000" })).toMatchObject({ requestTimeoutMs: 2000, headersTimeoutMs: 2000 });
  });
});

// The real entry point as `npm start` runs it, on the embedded default.
describe("main process", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-main-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("exits 1 with a message on bad configuration", async () => {
    const p = run({ PORT: "nope", KEYWARD_DATA_DIR: dataDir });
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/invalid configuration:[\s\S]*PORT/);
  });

  it("exits 1 on a malformed master key, without printing it or generating one instead", async () => {
    const malformed = randomBytes(31).toString("base64");
    const p = run({ KEYWARD_MASTER_KEY: malformed, KEYWARD_DATA_DIR: dataDir });
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/invalid configuration:\n {2}KEYWARD_MASTER_KEY: must be 32 bytes, base64-encoded/);
    expect(p.output()).not.toContain(malformed);
    expect(p.output()).not.toContain(malformed.slice(0, 16));
    expect(existsSync(join(dataDir, "master.key"))).toBe(false);
  });

  it("exits at once with status 69 when the database is unreachable, naming it without its password", async () => {
    const masterKey = randomBytes(32).toString("base64");
    const startedAt = Date.now();
    const p = run({ DATABASE_URL: "postgresql://keyward:hunter2-secret@127.0.0.1:1/keyward", KEYWARD_MASTER_KEY: masterKey, KEYWARD_DATA_DIR: dataDir });
    expect(await p.exited).toBe(69);
    expect(Date.now() - startedAt).toBeLessThan(20_000);
    expect(p.output()).toMatch(/the database 127\.0\.0\.1:1\/keyward is unreachable \(ECONNREFUSED\): exiting at once so that the supervisor can retry/);
    expect(p.output()).not.toContain("hunter2-secret");
  });

  it("refuses DATABASE_URL without KEYWARD_MASTER_KEY", async () => {
    const p = run({ DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/test", KEYWARD_DATA_DIR: dataDir });
    expect(await p.exited).toBe(1);
    expect(p.output()).toMatch(/KEYWARD_MASTER_KEY: required when DATABASE_URL is set/);
  });

  it("first start: generates a 0600 master key and prints an admin key once; serves; stops on SIGTERM", async () => {
    // A port of its own (test/helpers/pg-cluster.ts): a random one could be taken by another test's connection.
    const firstPort = String(await freePort());
    const first = run({ PORT: firstPort, KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" });
    // A first start creates the embedded database: seconds alone, much longer beside a loaded test run.
    await listening(first, "the first broker", 75_000);
    const adminKey = /\n {2}(kwa_[A-Za-z0-9_-]+)\n/.exec(first.output())?.[1];
    expect(adminKey).toMatch(/^kwa_[A-Za-z0-9_-]{43}$/);
    expect(first.output()).toMatch(/generated a master key/);
    // Started without `npm start`'s runtime settings, it says so (the next start has them).
    expect(first.output()).toMatch(/node was started without the V8 flags/);
    if (runsOnGlibc()) expect(first.output()).toMatch(/GLIBC_TUNABLES is not set/);
    expect(statSync(join(dataDir, "master.key")).mode & 0o777).toBe(0o600);

    const res = await fetch(`http://127.0.0.1:${firstPort}/v1/agents`, { headers: { authorization: `Bearer ${adminKey}` } });
    expect(res.status).toBe(200);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    // Second start on the same data, by `npm start`'s command line: no new key is printed, the old one
    // still works, and node got the V8 flags and malloc settings (no warning of either).
    const secondPort = String(await freePort());
    const second = run({ PORT: secondPort, KEYWARD_DATA_DIR: dataDir, LOG_LEVEL: "info" }, { startScript: true });
    await listening(second, "the second broker", 75_000);
    expect(second.output()).not.toMatch(/kwa_/);
    expect(second.output()).not.toMatch(/generated a master key/);
    expect(second.output()).not.toMatch(/node was started without the V8 flags|GLIBC_TUNABLES is not set/);
    const again = await fetch(`http://127.0.0.1:${secondPort}/v1/agents`, { headers: { authorization: `Bearer ${adminKey}` } });
    expect(again.status).toBe(200);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  }, 180_000);
});

/**
 * docs/operations.md, "Starting before the database": a server at max_connections is not unreachable.
 * The broker's first connection waits (with backoff) up to its connect timeout, 5 s, for room: it starts
 * if room is made meanwhile, else exits 69 like on an unreachable database.
 */
describe("main process on a server at max_connections", () => {
  let cluster: TempCluster;
  const others: pg.Client[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-full-"));
  const refusals = () => cluster.log().split("too many clients").length - 1;
  const env = () => ({
    DATABASE_URL: `${cluster.url}?schema=keyward`,
    KEYWARD_MASTER_KEY: randomBytes(32).toString("base64"),
    KEYWARD_DATA_DIR: dataDir,
    // Any free port: these tests never call the broker, and a fixed one could be taken.
    PORT: "0",
  });

  afterAll(async () => {
    await Promise.all(others.map((c) => c.end().catch(() => {})));
    await cluster?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Other clients take every connection the server has (superusers may use the reserved ones too). */
  const fill = async () => {
    for (;;) {
      const other = new pg.Client({ connectionString: cluster.url });
      try {
        await other.connect();
        others.push(other);
      } catch (err) {
        if ((err as { code?: string }).code === "53300") return;
        throw err;
      }
    }
  };

  it("waits for room, then starts", async () => {
    cluster = await startTempCluster({ maxConnections: 10 });
    await fill();
    const p = run(env());
    await waitFor(() => refusals() > 0 || p.child.exitCode !== null, 60_000, "the broker's first connection to be refused", 50);
    // Room for the pool's first connection and the notification connection, well within the 5 s.
    await Promise.all(others.splice(0, 3).map((c) => c.end()));
    await listening(p, "the broker", 60_000);
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  }, 120_000);

  it("exits with status 69 once its connect timeout passes without room, after a few spaced-out tries", async () => {
    await fill();
    const before = refusals();
    const p = run(env());
    await waitFor(() => refusals() > before || p.child.exitCode !== null, 60_000, "the broker's first connection to be refused", 50);
    const firstRefusedAt = Date.now();
    expect(await p.exited).toBe(69);
    expect(Date.now() - firstRefusedAt).toBeGreaterThanOrEqual(4_000);
    expect(p.output()).toMatch(/the database 127\.0\.0\.1:\d+\/postgres had no connection free within 5 s \(53300: max_connections reached\): exiting at once so that the supervisor can retry/);
    // Backoff, not a storm: a handful of tries in the 5 s.
    expect(refusals() - before).toBeGreaterThan(1);
    expect(refusals() - before).toBeLessThan(15);
  }, 120_000);
});
