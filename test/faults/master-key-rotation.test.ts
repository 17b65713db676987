import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store } from "../helpers/broker.js";
import { runCli } from "../helpers/cli.js";
import { createAgent } from "../helpers/scenario.js";
import { deriveCheckpointKey } from "../../src/audit/chain.js";
import { pruneAudit } from "../../src/audit/retention.js";
import { openDatabase } from "../../src/db/database.js";
import { parseMasterKey } from "../../src/vault/vault.js";
import { title } from "../security/cases.js";

// `keyward rotate-master-key` exiting 0 means the previous key is no longer needed for anything
// (test/e2e/master-key-rotation.test.ts has the secrets' side, interrupted and resumed).

describe(title("FLT-23"), () => {
  const stores: Store[] = [];
  afterAll(async () => {
    for (const store of stores) await store.drop();
  });

  it("the newest audit checkpoint, signed under the previous key, is signed again: the chain verifies under the new key alone", async () => {
    const store = newStore();
    stores.push(store);
    const oldKey = store.masterKey;
    const newKey = randomBytes(32).toString("base64");
    const broker = await startBroker(store);
    await createAgent(broker, "agent");
    await broker.close();
    // What the last broker on the old key left: a pruning checkpoint signed under it (a replica not yet
    // restarted with both keys, or an embedded broker stopped before it ever ran with them).
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      const pruned = await pruneAudit(db.prisma, [deriveCheckpointKey(parseMasterKey(oldKey))], {
        olderThan: new Date(Date.now() + 60_000),
        keepUnshipped: false,
        actor: "retention",
      });
      expect(pruned.checkpointId).not.toBeNull();
    } finally {
      await db.close();
    }

    const rotated = await runCli(["rotate-master-key"], {
      env: { DATABASE_URL: store.databaseUrl, KEYWARD_MASTER_KEY: newKey, KEYWARD_MASTER_KEY_PREVIOUS: oldKey },
    });
    expect(rotated).toMatchObject({ code: 0, stdout: expect.stringMatching(/; 0 still under another key/) });

    const after = await startBroker({ ...store, masterKey: newKey });
    try {
      expect((await after.admin("get", "/v1/audit/verify")).body).toMatchObject({ ok: true, firstBroken: null });
    } finally {
      await after.close();
    }
  }, 120_000);
});
