import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, loadDatabaseConfig } from "../../../src/config/config.js";

const KEY = Buffer.alloc(32, 7).toString("base64");
const PREVIOUS_KEY = Buffer.alloc(32, 6).toString("base64");

describe("secrets from files (<NAME>_FILE, for Docker and Kubernetes secrets)", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-secrets-"));
  const file = (name: string, content: string) => {
    writeFileSync(join(dir, name), content);
    return join(dir, name);
  };

  it("reads the database URL, the master keys and the admin key from files, without their trailing newline", () => {
    const config = loadConfig({
      DATABASE_URL_FILE: file("database-url", "postgresql://keyward:pw@db/keyward\n"),
      KEYWARD_MASTER_KEY_FILE: file("master", `${KEY}\n`),
      KEYWARD_MASTER_KEY_PREVIOUS_FILE: file("previous", `${PREVIOUS_KEY}\n`),
      KEYWARD_ADMIN_KEY_FILE: file("admin", `kwa_${"x".repeat(40)}\n`),
    });
    expect(config).toMatchObject({ databaseUrl: "postgresql://keyward:pw@db/keyward", masterKey: KEY, masterKeyPrevious: PREVIOUS_KEY, bootstrapAdminKey: `kwa_${"x".repeat(40)}` });
  });

  it("refuses a variable set both ways, and a file it cannot read", () => {
    expect(() => loadConfig({ KEYWARD_MASTER_KEY: KEY, KEYWARD_MASTER_KEY_FILE: file("both", KEY) })).toThrow(
      /KEYWARD_MASTER_KEY_FILE: set KEYWARD_MASTER_KEY or KEYWARD_MASTER_KEY_FILE, not both/,
    );
    expect(() => loadConfig({ KEYWARD_MASTER_KEY_FILE: join(dir, "missing") })).toThrow(/KEYWARD_MASTER_KEY_FILE: cannot read .*missing \(ENOENT\)/);
  });

  it("the database settings alone need no master key (migrate, backup, restore)", () => {
    expect(loadDatabaseConfig({ DATABASE_URL: "postgresql://keyward@db/keyward" })).toEqual({ databaseUrl: "postgresql://keyward@db/keyward", dataDir: "./.keyward" });
    expect(() => loadDatabaseConfig({ DATABASE_URL: "mysql://x" })).toThrow(/DATABASE_URL/);
  });

  it("a DATABASE_URL that does not parse is a configuration error that does not repeat it", () => {
    // Before: the CLI's database commands died with a TypeError's stack trace from new URL().
    const unparseable = "postgresql://keyward:hunter2-password@[db/keyward";
    let message = "";
    try {
      loadDatabaseConfig({ DATABASE_URL: unparseable });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/DATABASE_URL: is not a valid URL/);
    expect(message).not.toContain("hunter2");
  });
});
