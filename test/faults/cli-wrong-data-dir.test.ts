import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { newStore, type Store } from "../helpers/broker.js";
import { runCli } from "../helpers/cli.js";
import { title } from "../security/cases.js";

/**
 * The CLI's database commands on the embedded default name their database by KEYWARD_DATA_DIR, which
 * defaults to a relative path: run from another folder, or with a typo, they name a data dir that holds
 * nothing. A backup or a rotation there must not start a new, empty database and report success.
 */
describe("faults: keyward backup and rotate-master-key on a data dir without a database", () => {
  const parent = mkdtempSync(join(tmpdir(), "keyward-wrong-dir-"));
  chmodSync(parent, 0o711); // as root, the server's user must be able to enter it: the refusal is not about that
  afterAll(() => rmSync(parent, { recursive: true, force: true }));
  const [key, previous] = [randomBytes(32).toString("base64"), randomBytes(32).toString("base64")];

  it.each([
    ["backup", ["backup", "-o", join(parent, "keyward.backup")]],
    ["rotate-master-key", ["rotate-master-key"]],
  ])(`${title("ADM-38")}: %s`, { timeout: 60_000 }, async (_name, args) => {
    const dataDir = join(parent, `typo-${randomBytes(3).toString("hex")}`);
    const result = await runCli(args, { env: { KEYWARD_DATA_DIR: dataDir, KEYWARD_MASTER_KEY: key, KEYWARD_MASTER_KEY_PREVIOUS: previous } });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain(dataDir);
    expect(result.stderr).toMatch(/no Keyward database/);
    expect(existsSync(dataDir)).toBe(false);
    expect(existsSync(join(parent, "keyward.backup"))).toBe(false);
  });

  describe("with DATABASE_URL naming a database (or schema) no broker uses", () => {
    const stores: Store[] = [];
    afterAll(async () => {
      for (const store of stores) await store.drop();
    });
    it.each([
      ["backup", ["backup", "-o", join(parent, "keyward-url.backup")]],
      ["rotate-master-key", ["rotate-master-key"]],
    ])(`${title("ADM-38")}: %s`, { timeout: 60_000 }, async (_name, args) => {
      const store = newStore();
      stores.push(store);
      const result = await runCli(args, { env: { DATABASE_URL: store.databaseUrl, KEYWARD_MASTER_KEY: key, KEYWARD_MASTER_KEY_PREVIOUS: previous } });
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
      expect(result.stderr).toMatch(/no Keyward database/);
      expect(existsSync(join(parent, "keyward-url.backup"))).toBe(false);
    });
  });
});
