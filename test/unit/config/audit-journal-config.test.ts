import { describe, expect, it } from "vitest";
import { loadConfig, loadDatabaseConfig } from "../../../src/config/config.js";

const KEY = Buffer.alloc(32, 7).toString("base64");
const POSTGRES = { DATABASE_URL: "postgresql://keyward@db/keyward", KEYWARD_MASTER_KEY: KEY };

describe("the audit journal's settings (KEYWARD_AUDIT_JOURNAL*)", () => {
  it("is on beside the embedded database, in its data dir, and off with PostgreSQL", () => {
    expect(loadConfig({ KEYWARD_DATA_DIR: "/var/lib/keyward" }).auditJournal).toEqual({ dir: "/var/lib/keyward/audit-journal", maxLagMs: 5_000 });
    expect(loadConfig(POSTGRES).auditJournal).toBeUndefined();
  });

  it("is switched either way, and put elsewhere, by the environment", () => {
    expect(loadConfig({ KEYWARD_AUDIT_JOURNAL: "off" }).auditJournal).toBeUndefined();
    expect(loadConfig({ ...POSTGRES, KEYWARD_AUDIT_JOURNAL: "on", KEYWARD_AUDIT_JOURNAL_DIR: "/journal", KEYWARD_AUDIT_JOURNAL_MAX_LAG_MS: "250" }).auditJournal).toEqual({
      dir: "/journal",
      maxLagMs: 250,
    });
    // Commands working on the database alone find the same journal (backup replays a stopped broker's).
    expect(loadDatabaseConfig({ KEYWARD_DATA_DIR: "/d" }).auditJournal).toEqual({ dir: "/d/audit-journal", maxLagMs: 5_000 });
  });

  it("refuses values it does not know", () => {
    expect(() => loadConfig({ KEYWARD_AUDIT_JOURNAL: "yes" })).toThrow(/KEYWARD_AUDIT_JOURNAL:/);
    expect(() => loadConfig({ KEYWARD_AUDIT_JOURNAL_MAX_LAG_MS: "10" })).toThrow(/KEYWARD_AUDIT_JOURNAL_MAX_LAG_MS:/);
    expect(() => loadConfig({ KEYWARD_AUDIT_JOURNAL_DIR: "" })).toThrow(/KEYWARD_AUDIT_JOURNAL_DIR:/);
  });
});
