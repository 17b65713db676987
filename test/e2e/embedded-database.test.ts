import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../helpers/broker.js";
import { MAIN } from "../helpers/broker-process.js";
import { freePort } from "../helpers/pg-cluster.js";
import { basic } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";
import { processAlive } from "../../src/util/process-alive.js";

type Main = { child: ChildProcess; url: string; output: () => string; exited: Promise<number | null> };

const masterKey = randomBytes(32).toString("base64");

/** The broker as `npm start` runs it (MAIN), on the embedded default (no DATABASE_URL), on `dataDir`. */
async function startMain(dataDir: string, options: { uid?: number; gid?: number } = {}): Promise<Main> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: tmpdir(),
      PORT: String(port),
      KEYWARD_DATA_DIR: dataDir,
      KEYWARD_MASTER_KEY: masterKey,
      KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY,
      // Fixed, so that a token stays valid for the broker restarted on another port.
      KEYWARD_ISSUER: "http://keyward.test",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
    ...options,
  });
  let out = "";
  child.stdout!.on("data", (c) => (out += c));
  child.stderr!.on("data", (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { child, url: `http://127.0.0.1:${port}`, output: () => out, exited };
}

/**
 * Waits until the broker answers /healthz; fails with its output if it exits first. A port taken between
 * freePort and listen (other processes on the machine) is retried on another one.
 */
async function serving(first: Main, restart?: () => Promise<Main>): Promise<Main> {
  let main = first;
  await waitFor(
    async () => {
      if (main.child.exitCode !== null && restart && /EADDRINUSE/.test(main.output())) {
        main = await restart();
        return false;
      }
      if (main.child.exitCode !== null) throw new Error(`broker exited at start: ${main.output()}`);
      return (await fetch(`${main.url}/healthz`).catch(() => null))?.ok;
    },
    60_000,
    () => `the broker to start: ${main.output()}`,
    50,
  );
  return main;
}

const postmasterPid = (dataDir: string) => Number(readFileSync(join(dataDir, "postgres", "postmaster.pid"), "utf8").split("\n")[0]);

/**
 * Issue 14: the embedded default is a private PostgreSQL server. What users will hit with it: a second
 * broker on the same data dir, a broker killed (its server orphaned), the server killed under a running
 * broker, a data dir of the PGlite-based Keyward, and running as root or as an unprivileged user.
 */
describe("embedded PostgreSQL, through the real entry point", () => {
  const dirs: string[] = [];
  const running: Main[] = [];
  const newDir = (prefix = "keyward-embedded-") => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(dir);
    return dir;
  };
  let upstream: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    for (const m of running) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill("SIGKILL");
    await Promise.all(running.map((m) => m.exited));
    // A server a killed broker left behind is stopped by the next start; the last one is stopped here.
    for (const dir of dirs) {
      try {
        const pid = postmasterPid(dir);
        if (processAlive(pid)) process.kill(pid, "SIGQUIT");
      } catch {
        // no server
      }
    }
    await upstream?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const start = async (dataDir: string, options?: { uid?: number; gid?: number }) => {
    const main = await startMain(dataDir, options);
    running.push(main);
    return main;
  };
  const startServing = async (dataDir: string, options?: { uid?: number; gid?: number }) =>
    serving(await start(dataDir, options), () => start(dataDir, options));
  const admin = (main: Main, method: string, path: string, body?: unknown) =>
    fetch(main.url + path, {
      method,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it("one broker per data dir; a killed broker's orphaned server is stopped at the next start; a killed server fails closed and exits non-zero", { timeout: 150_000 }, async () => {
    const dataDir = newDir();
    const first = await startServing(dataDir);
    expect((await admin(first, "POST", "/v1/upstreams", { name: "api", baseUrl: upstream.url, environment: "staging", auth: { type: "header" }, secret: "embedded-test-secret" })).status).toBe(201);
    const agent = (await (await admin(first, "POST", "/v1/agents", { name: "agent" })).json()) as { id: string; clientId: string; clientSecret: string };
    expect((await admin(first, "POST", "/v1/grants", { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] })).status).toBe(201);
    const tokenRes = await fetch(`${first.url}/v1/tokens`, {
      method: "POST",
      headers: { authorization: basic(agent.clientId, agent.clientSecret), "content-type": "application/json" },
      body: JSON.stringify({ grant: "g" }),
    });
    const token = ((await tokenRes.json()) as { access_token: string }).access_token;
    const proxy = (main: Main, path = "/v1/items") => fetch(`${main.url}/proxy/api${path}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await proxy(first)).status).toBe(200);

    // (a) A second broker on the same data dir is refused, and says why; the first one is untouched.
    const second = await start(dataDir);
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`another Keyward (pid ${first.child.pid}) is using the data dir ${dataDir}`);
    expect((await proxy(first)).status).toBe(200);

    // (b) The broker killed: its server lives on, orphaned...
    const orphan = postmasterPid(dataDir);
    first.child.kill("SIGKILL");
    expect(await first.exited).toBe(-1);
    expect(processAlive(orphan)).toBe(true);
    // ...and the next start on the same data dir stops it, starts its own, and has everything.
    const third = await startServing(dataDir);
    expect(processAlive(orphan)).toBe(false);
    expect(postmasterPid(dataDir)).not.toBe(orphan);
    expect((await proxy(third)).status).toBe(200);
    const agents = (await (await admin(third, "GET", "/v1/agents")).json()) as { agents: { id: string }[] };
    expect(agents.agents.map((a) => a.id)).toContain(agent.id);

    // (c) The server killed under the running broker, during calls: nothing is forwarded once calls are
    // refused, every answer is a success from before or a 503, and the broker exits non-zero.
    const outcomes: { status: number; forwardedBefore: number; begunAfterRefusal: boolean }[] = [];
    let calling = true;
    let refusalSeen = false;
    const callers = Array.from({ length: 3 }, async () => {
      while (calling) {
        const forwardedBefore = upstream.received.length;
        const begunAfterRefusal = refusalSeen;
        const res = await proxy(third).catch(() => null);
        if (!res) break; // the broker is gone
        if (res.status === 503) refusalSeen = true;
        outcomes.push({ status: res.status, forwardedBefore, begunAfterRefusal });
        await res.arrayBuffer().catch(() => {}); // the broker may exit mid-body
      }
    });
    await waitFor(() => outcomes.length >= 5, 20_000, "calls before the kill");
    const server = postmasterPid(dataDir);
    process.kill(server, "SIGKILL");
    const code = await third.exited;
    calling = false;
    await Promise.all(callers);
    expect(code).toBe(1);
    expect(third.output()).toMatch(new RegExp(`the embedded PostgreSQL \\(pid ${server}\\) exited \\(signal SIGKILL\\); exiting`));
    expect(new Set(outcomes.map((o) => o.status)).size).toBeGreaterThan(0);
    for (const o of outcomes) expect([200, 503]).toContain(o.status);
    const firstRefusal = outcomes.findIndex((o) => o.status === 503);
    if (firstRefusal >= 0) {
      const refusedAt = outcomes[firstRefusal]!.forwardedBefore;
      // Calls begun after the first refusal was seen never succeed; those in flight then may (they ran).
      expect(outcomes.filter((o) => o.begunAfterRefusal && o.status === 200)).toEqual([]);
      expect(upstream.received.length).toBeLessThanOrEqual(refusedAt + 3);
    }

    // Restarted (as a supervisor would) on the same data: every acknowledged event is there, the chain verifies.
    const fourth = await startServing(dataDir);
    expect((await proxy(fourth)).status).toBe(200);
    const verify = (await (await admin(fourth, "GET", "/v1/audit/verify")).json()) as { ok: boolean; duplicates: number };
    expect(verify).toMatchObject({ ok: true, duplicates: 0 });
    fourth.child.kill("SIGTERM");
    expect(await fourth.exited).toBe(0);
  });

  it("refuses a data dir of the PGlite-based Keyward, saying how to move", async () => {
    const dataDir = newDir();
    mkdirSync(join(dataDir, "pgdata"));
    writeFileSync(join(dataDir, "pgdata", "PG_VERSION"), "16\n");
    const main = await start(dataDir);
    expect(await main.exited).toBe(1);
    expect(main.output()).toContain(`${dataDir} holds a database of the PGlite-based Keyward`);
    expect(main.output()).toMatch(/keyward backup/);
    expect(main.output()).toMatch(/keyward restore/);
  });

  it.runIf(process.getuid?.() === 0)("as root, refuses a data dir the postgres user cannot reach, naming the folder", async () => {
    const parent = newDir("keyward-closed-");
    chmodSync(parent, 0o700);
    const main = await start(join(parent, "data"));
    expect(await main.exited).toBe(1);
    expect(main.output()).toContain(`that user cannot enter ${parent} (mode 700)`);
    expect(main.output()).toContain(`chmod o+x ${parent}`);
  });

  it("as an unprivileged user, starts and serves", { timeout: 90_000 }, async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip(); // already unprivileged: every other test here shows it
    // `nobody` must be able to read the code and node itself; a checkout under a private folder cannot.
    const readable = await new Promise<boolean>((resolve) => {
      const probe = spawn(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(join(process.cwd(), "src", "main.ts"))})`], { uid: 65534, gid: 65534, stdio: "ignore" });
      probe.on("exit", (c) => resolve(c === 0));
      probe.on("error", () => resolve(false));
    });
    if (!readable) {
      ctx.skip(); // the user nobody cannot read this checkout (a private folder above it): nothing to show here
    }
    const dataDir = newDir("keyward-nobody-");
    chownSync(dataDir, 65534, 65534);
    const main = await startServing(join(dataDir, "data"), { uid: 65534, gid: 65534 });
    expect((await admin(main, "GET", "/v1/agents")).status).toBe(200);
    // Its server runs as the same user (no postgres user needed), and stops with it.
    const server = postmasterPid(join(dataDir, "data"));
    expect(readFileSync(`/proc/${server}/status`, "utf8")).toMatch(/^Uid:\s+65534\b/m);
    main.child.kill("SIGTERM");
    expect(await main.exited).toBe(0);
    expect(processAlive(server)).toBe(false);
  });
});
