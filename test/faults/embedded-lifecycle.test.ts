import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../helpers/broker.js";
import { spawnMain } from "../helpers/broker-process.js";
import { freePort } from "../helpers/pg-cluster.js";
import { waitFor } from "../helpers/wait.js";
import { title } from "../security/cases.js";
import { processAlive } from "../../src/util/process-alive.js";

type Main = { child: ChildProcess; url: string; output: () => string; exited: Promise<number | null> };

const masterKey = randomBytes(32).toString("base64");


/**
 * Issue 14, the embedded default's lifecycle as users hit it beyond test/e2e/embedded-database.test.ts:
 * a machine that rebooted (the lock files name pids that other processes have now), and data dirs the
 * embedded server cannot use.
 */
describe("faults: the embedded PostgreSQL's data dir", () => {
  const dirs: string[] = [];
  const running: Main[] = [];
  const bystanders: ChildProcess[] = [];
  afterAll(async () => {
    for (const m of running) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill("SIGTERM");
    await Promise.all(running.map((m) => m.exited));
    for (const b of bystanders) b.kill("SIGKILL");
    for (const dir of dirs) {
      try {
        const pid = Number(readFileSync(join(dir, "postgres", "postmaster.pid"), "utf8").split("\n")[0]);
        if (processAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dir)) process.kill(pid, "SIGQUIT");
      } catch {
        // no server
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const newDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-lifecycle-"));
    chmodSync(dir, 0o711); // as root, the server's user must be able to enter it
    dirs.push(dir);
    return dir;
  };

  const start = async (dataDir: string, { adminKey = TEST_ADMIN_KEY }: { adminKey?: string } = {}): Promise<Main> => {
    const port = await freePort();
    const child = spawnMain(
      {
        PATH: process.env.PATH ?? "",
        HOME: tmpdir(),
        PORT: String(port),
        HOST: "127.0.0.1",
        KEYWARD_DATA_DIR: dataDir,
        KEYWARD_MASTER_KEY: masterKey,
        ...(adminKey && { KEYWARD_ADMIN_KEY: adminKey }),
        LOG_LEVEL: "warn",
      },
      ["ignore", "pipe", "pipe"],
    );
    let out = "";
    child.stdout!.on("data", (c) => (out += c));
    child.stderr!.on("data", (c) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
    const main = { child, url: `http://127.0.0.1:${port}`, output: () => out, exited };
    running.push(main);
    return main;
  };
  const serving = (main: Main) =>
    waitFor(
      async () => {
        if (main.child.exitCode !== null) throw new Error(`broker exited at start: ${main.output()}`);
        return (await fetch(`${main.url}/healthz`).catch(() => null))?.ok;
      },
      60_000,
      () => `the broker to start: ${main.output()}`,
      50,
    );

  it(title("FLT-15"), { timeout: 120_000 }, async () => {
    const dataDir = newDir();
    const first = await start(dataDir);
    await serving(first);
    const server = Number(readFileSync(join(dataDir, "postgres", "postmaster.pid"), "utf8").split("\n")[0]);

    // Power lost: the broker and its server die at once, their lock files stay.
    process.kill(-first.child.pid!, "SIGKILL");
    process.kill(server, "SIGKILL");
    await first.exited;
    const gone = (pid: number) => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    };
    await waitFor(() => gone(server), 10_000, "the server to be reaped"); // a zombie still counts for PostgreSQL

    // After the reboot, both pids belong to processes that have nothing to do with Keyward (a shell, a
    // database client...), which stop on SIGINT as most programs do.
    const bystander = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    bystanders.push(bystander);
    await waitFor(() => processAlive(bystander.pid!), 5_000, "the bystander to start");
    const reusePid = (file: string) => writeFileSync(file, readFileSync(file, "utf8").replace(/^\d+/, String(bystander.pid)));
    reusePid(join(dataDir, "keyward.pid"));
    reusePid(join(dataDir, "postgres", "postmaster.pid"));
    reusePid(join(dataDir, "run", ".s.PGSQL.5432.lock"));

    // The broker starts (no "another Keyward is using the data dir"), and the bystander was not signalled.
    const second = await start(dataDir);
    await serving(second);
    expect(processAlive(bystander.pid!)).toBe(true);
    expect((await fetch(`${second.url}/v1/agents`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } })).status).toBe(200);

    // A second broker on the same data dir is still refused while it runs.
    const third = await start(dataDir);
    expect(await third.exited).toBe(1);
    expect(third.output()).toContain(`another Keyward (pid ${second.child.pid}) is using the data dir ${dataDir}`);

    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(processAlive(bystander.pid!)).toBe(true);
  });

  // The PostgreSQL servers (postmasters) running on a data dir's cluster: their command line names it.
  const serversOn = (dataDir: string) =>
    readdirSync("/proc").filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(join(dataDir, "postgres"));
      } catch {
        return false; // gone meanwhile
      }
    });

  it.each([
    ["while initdb creates the cluster", "PG_VERSION"],
    ["once the server runs (migrations)", "postmaster.pid"],
  ])(`${title("FLT-61")} (%s)`, { timeout: 120_000 }, async (_moment, appears) => {
    const dataDir = newDir();
    const main = await start(dataDir);
    await waitFor(() => existsSync(join(dataDir, "postgres", appears)) || main.child.exitCode !== null, 60_000, () => `${appears}: ${main.output()}`, 5);
    main.child.kill("SIGTERM"); // the broker alone, as `kill <pid>` or a supervisor that signals its main process
    const code = await main.exited;
    expect(serversOn(dataDir)).toEqual([]);
    expect(code).toBe(1);
    expect(main.output()).toMatch(/stopped by SIGTERM during start-up/);
    expect(existsSync(join(dataDir, "keyward.pid"))).toBe(false);

    // Nothing half-made: the next start on the data dir serves.
    const next = await start(dataDir);
    await serving(next);
    next.child.kill("SIGTERM");
    expect(await next.exited).toBe(0);
    expect(serversOn(dataDir)).toEqual([]);
  });

  it(title("FLT-62"), { timeout: 120_000 }, async () => {
    const dataDir = newDir();
    // Something later in the start fails on the first run: here the audit spool's folder cannot be made.
    writeFileSync(join(dataDir, "audit-spool"), "");
    const first = await start(dataDir, { adminKey: "" });
    expect(await first.exited).toBe(1);
    const shown = /Your admin key[^\n]*:\n\n {2}(\S+)/.exec(first.output())?.[1];
    expect(shown, first.output()).toBeDefined();

    rmSync(join(dataDir, "audit-spool"));
    const next = await start(dataDir, { adminKey: "" });
    await serving(next);
    expect(next.output()).not.toMatch(/Your admin key/);
    expect((await fetch(`${next.url}/v1/agents`, { headers: { authorization: `Bearer ${shown}` } })).status).toBe(200);
    next.child.kill("SIGTERM");
    expect(await next.exited).toBe(0);
  });

  it(title("FLT-16"), { timeout: 30_000 }, async () => {
    // 107 bytes is all a Unix socket's path may hold on Linux (sun_path); the socket is run/.s.PGSQL.5432.
    const parent = newDir();
    const dataDir = join(parent, "x".repeat(Math.max(1, 108 - join(parent, "/run/.s.PGSQL.5432").length)));
    mkdirSync(dataDir);
    const main = await start(dataDir);
    expect(await main.exited).toBe(1);
    expect(main.output()).toMatch(/too long/);
    expect(main.output()).toContain("107 bytes");
    expect(main.output()).toMatch(/shorter KEYWARD_DATA_DIR/);
    expect(main.output()).not.toMatch(/\n\s+at /); // no stack trace
    // Refused before anything was made in it.
    expect(existsSync(join(dataDir, "postgres"))).toBe(false);
  });
});
