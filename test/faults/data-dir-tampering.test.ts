import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store } from "../helpers/broker.js";
import { openDatabase } from "../../src/db/database.js";
import { serialisedAuditRow } from "../../src/audit/audit.js";
import { loadOrCreateLocalMasterKey } from "../../src/vault/vault.js";
import { title } from "../security/cases.js";

/** Another local user: `nobody` when the suite runs as root (it can give files away), else only the mode tells. */
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/**
 * What Keyward trusts in its data dir beyond the database: the audit spool it adopts after a crash, and the
 * master key it reads. A data dir others may write to (a shared volume, a `/tmp` path, a folder made with a
 * loose umask) lets another local user plant either before the broker reads it.
 */
describe("faults: a data dir another local user can write to", () => {
  const stores: Store[] = [];
  afterAll(async () => {
    for (const store of stores) await store.drop();
  });

  const forgedLine = (eventId: string) =>
    serialisedAuditRow({ kind: "admin.change", actor: "admin:alice", details: { action: "grant.delete", forged: true } }, eventId).json;

  it(`${title("FLT-54")}: a spool planted in a loose audit-spool directory is refused, never shipped into the chain`, async () => {
    const store = newStore();
    stores.push(store);
    chmodSync(store.dataDir, 0o777);
    const root = join(store.dataDir, "audit-spool");
    mkdirSync(root, { mode: 0o777 });
    chmodSync(root, 0o777);
    const planted = join(root, randomUUID());
    mkdirSync(planted);
    const eventId = `forged-${randomBytes(4).toString("hex")}`;
    writeFileSync(join(planted, "000001.jsonl"), forgedLine(eventId) + "\n");
    if (asRoot) chownSync(root, NOBODY, NOBODY);

    await expect(startBroker(store)).rejects.toThrow(/audit-spool.*(writable|owned)/);
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      expect(await db.prisma.auditEvent.count({ where: { eventId } }).catch(() => 0)).toBe(0);
    } finally {
      await db.close();
    }
  });

  it(`${title("FLT-54")}: a master key file others may write to, or (as root) another user's, is refused`, () => {
    const store = newStore();
    stores.push(store);
    const path = join(store.dataDir, "master.key");
    writeFileSync(path, randomBytes(32).toString("base64") + "\n", { mode: 0o666 });
    chmodSync(path, 0o666);
    expect(() => loadOrCreateLocalMasterKey(store.dataDir)).toThrow(/master\.key.*writable/);
    if (asRoot) {
      chmodSync(path, 0o600);
      chownSync(path, NOBODY, NOBODY);
      expect(() => loadOrCreateLocalMasterKey(store.dataDir)).toThrow(/master\.key.*owned/);
    }
  });
});
