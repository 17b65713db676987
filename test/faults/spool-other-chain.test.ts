import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { serialisedAuditRow } from "../../src/audit/audit.js";
import { auditChainId } from "../../src/audit/log.js";
import { openDatabase } from "../../src/db/database.js";
import { newStore, startBroker, type Store } from "../helpers/broker.js";
import { waitFor } from "../helpers/wait.js";
import { title } from "../security/cases.js";

/** A pid that ran on this host and is gone. */
const deadPid = () => spawnSync(process.execPath, ["-e", "0"]).pid!;

async function inDatabase<T>(store: Store, read: (db: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>): Promise<T> {
  const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
  try {
    return await read(db);
  } finally {
    await db.close();
  }
}

/**
 * One data dir, two databases: the relative default `./.keyward` of a clone started once on the embedded
 * default and once with a DATABASE_URL, or two schemas. A broker of one that crashed left its spool there;
 * a broker of the other must not ship it into its own chain (where it does not belong, and from which its
 * own chain would miss it).
 */
describe("faults: a data dir shared by brokers of two databases", () => {
  const stores: Store[] = [];
  afterAll(async () => {
    for (const store of stores) await store.drop();
  });

  it(`${title("FLT-59")}: a crashed broker's spool is shipped only into its own database's chain`, async () => {
    const first = newStore();
    const second = { ...newStore(), dataDir: first.dataDir };
    stores.push(first, second);
    // Both databases made (migrated) by a broker of their own.
    for (const store of [first, second]) await (await startBroker(store)).close();
    const firstChain = await inDatabase(first, auditChainId);
    expect(firstChain).not.toBe(await inDatabase(second, auditChainId));

    // What a broker of the first database left when it was killed: its spool, an event acknowledged in it.
    const left = join(first.dataDir, "audit-spool", randomUUID());
    mkdirSync(left, { mode: 0o700 });
    writeFileSync(join(left, "chain"), firstChain, { mode: 0o600 });
    writeFileSync(join(left, "owner.json"), JSON.stringify({ host: hostname(), pid: deadPid() }), { mode: 0o600 });
    const eventId = `left-${randomBytes(4).toString("hex")}`;
    writeFileSync(join(left, "000001.jsonl"), serialisedAuditRow({ kind: "admin.change", actor: "admin:test", details: { left: true } }, eventId).json + "\n");

    const other = await startBroker(second);
    await other.close();
    expect(await inDatabase(second, (db) => db.prisma.auditEvent.count({ where: { eventId } }))).toBe(0);
    expect(existsSync(left)).toBe(true);
    expect(other.logs.some((line) => line.includes(left) && line.includes("another database's audit chain"))).toBe(true);

    const own = await startBroker(first);
    try {
      await waitFor(async () => (await inDatabase(first, (db) => db.prisma.auditEvent.count({ where: { eventId } }))) === 1 || undefined, 10_000, "the left event shipped");
      const verified = await own.admin("get", "/v1/audit/verify");
      expect(verified.status).toBe(200);
      expect(verified.body.ok).toBe(true);
    } finally {
      await own.close();
    }
    expect(existsSync(left)).toBe(false);
  });
});
