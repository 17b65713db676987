import { mkdtempSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/log.js";
import { AuditSpool } from "../../src/audit/spool.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { newStore, type Store } from "../helpers/broker.js";
import { startPgRelay, type PgRelay } from "../helpers/pg-relay.js";
import { title } from "../security/cases.js";

/**
 * A broker's stop ships what its audit log still holds. With DATABASE_URL, a replica's data dir may go
 * with the replica (a container's own disk): what the stop leaves in the spool is lost with it.
 */
describe("faults: the audit log's last shipment at a stop", () => {
  let store: Store;
  let db: Database;
  let relay: PgRelay;
  beforeAll(async () => {
    store = newStore();
    relay = await startPgRelay(store.databaseUrl);
    db = await openDatabase({ kind: "postgres", url: relay.url });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await relay?.close();
    await store?.drop();
  });

  it(title("FLT-56"), async () => {
    const root = join(mkdtempSync(join(store.dataDir, "spool-")), "audit-spool");
    const { spool, recovered } = AuditSpool.open(root, "test-chain");
    const log = new AuditLog(db, spool, recovered, { onWritten: () => {}, onSetAside: () => {}, onHealth: () => {} });
    // The database restarts: the events of the calls answered meanwhile wait in the spool...
    relay.down(true);
    await Promise.all(Array.from({ length: 700 }, (_, i) => log.keep({ kind: "proxy.response", actor: "agent:a", requestId: `r${i}` })));
    // ...past a few failed shipments, whose retries now come further apart...
    await new Promise((r) => setTimeout(r, 400));
    expect(log.backlog).toBe(700);
    // ...and it answers again as the broker stops.
    relay.down(false);
    const { unshipped } = await log.close();
    expect(unshipped).toBe(0);
    expect(await db.prisma.auditEvent.count({ where: { kind: "proxy.response" } })).toBe(700);
    expect(readdirSync(root)).toEqual([]);
  });
});
