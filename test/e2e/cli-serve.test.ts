import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { newStore, TEST_ADMIN_KEY, type Store } from "../helpers/broker.js";
import { CLI, cli, emptyHome } from "../helpers/cli.js";
import { freePort } from "../helpers/pg-cluster.js";
import { waitFor } from "../helpers/wait.js";

/** A long-running `keyward` command, its output collected as it comes. */
function start(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", HOME: emptyHome(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (c) => (output += c));
  child.stderr!.on("data", (c) => (output += c));
  return { child, output: () => output, exited: new Promise((resolve) => child.on("exit", (code) => resolve(code))) };
}

describe("keyward migrate, serve, audit tail --follow", () => {
  const store: Store = newStore();
  const running: ChildProcess[] = [];
  afterAll(async () => {
    for (const child of running) child.kill("SIGKILL");
    await store.drop();
  });

  it("migrates a new database, serves it, follows the audit log, and stops on SIGTERM", async () => {
    const database: Record<string, string> = store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : { KEYWARD_DATA_DIR: store.dataDir };
    const { applied } = JSON.parse(await cli(["--json", "migrate"], { env: database }));
    expect(applied[0]).toBe("0001_init");
    expect(JSON.parse(await cli(["--json", "migrate"], { env: database }))).toEqual({ applied: [] });

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const serve = start(["serve", "--port", String(port)], { ...database, KEYWARD_MASTER_KEY: store.masterKey, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY, LOG_LEVEL: "warn" });
    running.push(serve.child);
    await waitFor(() => fetch(`${url}/readyz`).then((r) => r.ok, () => false), 60_000, "keyward serve to be ready");

    const admin = { KEYWARD_URL: url, KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY };
    const tail = start(["audit", "tail", "--follow", "--interval", "200", "--json", "-n", "0"], admin);
    running.push(tail.child);
    await new Promise((r) => setTimeout(r, 3_000)); // the tail has read where the log ends
    await cli(["agent", "add", "late-bot"], { env: admin });
    await waitFor(() => tail.output().includes('"kind":"admin.change"'), 30_000, "audit tail --follow to print the admin change");
    const event = JSON.parse(tail.output().trim().split("\n").at(-1)!);
    expect(event).toMatchObject({ kind: "admin.change", details: { action: "agent.create" } });
    tail.child.kill("SIGTERM");

    serve.child.kill("SIGTERM");
    expect(await serve.exited).toBe(0);
  }, 180_000);
});
