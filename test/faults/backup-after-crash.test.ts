import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { serialisedAuditRow } from "../../src/audit/audit.js";
import { runCli } from "../helpers/cli.js";
import { title } from "../security/cases.js";

/**
 * `keyward backup` of an embedded data dir whose broker crashed (SIGKILL, OOM, power loss): the events it
 * had acknowledged but not shipped are in its spool, not yet in the database the backup reads.
 */
describe("faults: a backup of an embedded data dir after a crash", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-backup-crash-"));
  chmodSync(dataDir, 0o711); // as root, the server's user must be able to enter it
  const env = { KEYWARD_DATA_DIR: dataDir, KEYWARD_MASTER_KEY: randomBytes(32).toString("base64") };
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it(title("FLT-57"), { timeout: 120_000 }, async () => {
    expect((await runCli(["migrate"], { env })).code).toBe(0);
    // What a broker killed right after answering a call leaves: its spool, its owner file naming a pid now gone.
    const gone = spawnSync("true").pid;
    const spool = join(dataDir, "audit-spool", randomUUID());
    mkdirSync(spool, { recursive: true, mode: 0o700 });
    writeFileSync(join(spool, "owner.json"), JSON.stringify({ host: hostname(), pid: gone }));
    const eventId = `crashed-${randomBytes(4).toString("hex")}`;
    const event = serialisedAuditRow({ kind: "proxy.response", actor: "agent:a", requestId: "r1", status: 200 }, eventId).json;
    writeFileSync(join(spool, "000001.jsonl"), event + "\n");

    const out = join(dataDir, "keyward.backup");
    const backup = await runCli(["backup", "-o", out], { env });
    expect(backup.code, backup.stderr).toBe(0);
    // The acknowledged event is in the backup, and the spool it came from is done with.
    expect(readFileSync(out, "utf8")).toContain(eventId);
    expect(existsSync(spool)).toBe(false);
    expect(readdirSync(join(dataDir, "audit-spool"))).toEqual([]);
  });
});
