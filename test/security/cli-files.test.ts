import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { runCli } from "../helpers/cli.js";
import { title } from "./cases.js";

/** What the CLI writes to a file, beside `keyward backup -o` (test/e2e/backup-*.test.ts): the audit log exported. */
describe(title("ADM-35"), () => {
  let store: Store;
  let broker: TestBroker;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store, { LOG_LEVEL: "warn" });
    expect((await broker.admin("post", "/v1/agents", { name: "exported" })).status).toBe(201);
    dir = mkdtempSync(join(tmpdir(), "keyward-export-"));
    env = { KEYWARD_URL: broker.url, KEYWARD_ADMIN_KEY: broker.adminKey };
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("audit export -o creates its file 0600 under a umask that leaves files readable by everyone (022)", async () => {
    expect(process.umask() & 0o044).toBe(0); // the CLI inherits it
    const file = join(dir, "audit.jsonl");
    const exported = await runCli(["audit", "export", "-o", file], { env });
    expect(exported.code, exported.stderr).toBe(0);
    expect(readFileSync(file, "utf8")).toContain('"agent.create"');
    expect(statSync(file).mode & 0o777).toBe(0o600);
  }, 60_000);

  it("audit export -o refuses a file or a symlink already at the path, and leaves it as it was", async () => {
    const planted = join(dir, "planted.jsonl");
    writeFileSync(planted, "someone else's\n", { mode: 0o644 });
    const linked = join(dir, "linked.jsonl");
    const target = join(dir, "readable-target");
    symlinkSync(target, linked);

    for (const path of [planted, linked]) {
      const refused = await runCli(["audit", "export", "-o", path], { env });
      expect(refused.code, path).toBe(1);
      expect(refused.stderr, path).toMatch(/exists/);
    }
    expect(readFileSync(planted, "utf8")).toBe("someone else's\n");
    expect(lstatSync(linked).isSymbolicLink()).toBe(true);
    expect(existsSync(target)).toBe(false);
  }, 60_000);

  it("audit export -o that the broker refuses leaves no file behind for the retry to trip on", async () => {
    const file = join(dir, "refused.jsonl");
    const refused = await runCli(["audit", "export", "-o", file], { env: { ...env, KEYWARD_ADMIN_KEY: `kwa_${"x".repeat(43)}` } });
    expect(refused.code).toBe(1);
    expect(existsSync(file)).toBe(false);
  }, 60_000);
});
