import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store } from "../helpers/broker.js";
import { runCli } from "../helpers/cli.js";
import { createAgent, createUpstream } from "../helpers/scenario.js";
import { deriveCheckpointKey } from "../../src/audit/chain.js";
import { pruneAudit } from "../../src/audit/retention.js";
import { openDatabase } from "../../src/db/database.js";
import { parseMasterKey, Vault } from "../../src/vault/vault.js";
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

describe(title("FLT-24"), () => {
  const stores: Store[] = [];
  afterAll(async () => {
    for (const store of stores) await store.drop();
  });

  it("an upstream secret neither key decrypts is named and left; every other secret is re-encrypted", async () => {
    const store = newStore();
    stores.push(store);
    const oldKey = store.masterKey;
    const newKey = randomBytes(32).toString("base64");
    const broker = await startBroker(store, { KEYWARD_FORWARD_PROXY_PORT: "0" });
    try {
      for (const name of ["broken", "fine-1", "fine-2"]) {
        await createUpstream(broker, { name, baseUrl: "http://127.0.0.1:9", environment: "staging", secret: `rotation-secret-${name}` });
      }
      expect((await broker.http().get("/v1/forward-proxy/ca.pem")).status).toBe(200);
      // Under a key neither side of the rotation holds (ADM-13's case): first in the table.
      const prisma = broker.keyward.db.prisma;
      const row = await prisma.upstream.findUniqueOrThrow({ where: { name: "broken" } });
      const [format, , nonce, body] = row.secretCiphertext.split(".");
      await prisma.upstream.update({ where: { id: row.id }, data: { secretCiphertext: [format, "another-master-key", nonce, body].join(".") } });
    } finally {
      await broker.close();
    }

    const env = { DATABASE_URL: store.databaseUrl, KEYWARD_MASTER_KEY: newKey, KEYWARD_MASTER_KEY_PREVIOUS: oldKey };
    const rotated = await runCli(["rotate-master-key"], { env });
    expect(rotated.code).toBe(1);
    expect(rotated.stdout).toMatch(/; 1 still under another key/);
    expect(rotated.stderr).toMatch(/upstream broken: its secret decrypts under neither key: set it again/);
    expect(rotated.stderr).not.toContain("rotation-secret");
    // The same, for a script: the result and what is left to replace, on stdout, as JSON.
    const json = await runCli(["--json", "rotate-master-key"], { env });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ reencrypted: 0, remaining: 1, unreadable: [expect.stringMatching(/^upstream broken: its secret decrypts under neither key/)] });

    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      const vault = new Vault(parseMasterKey(newKey));
      const under = async () => [
        ...(await db.prisma.upstream.findMany({ where: { name: { not: "broken" } } })).map((r) => r.secretCiphertext),
        ...(await db.prisma.signingKey.findMany()).map((r) => r.privateCiphertext),
        ...(await db.prisma.forwardProxyCa.findMany()).map((r) => r.keyCiphertext),
      ];
      const rest = await under();
      expect(rest.length).toBeGreaterThanOrEqual(4);
      for (const ciphertext of rest) expect(vault.isCurrent(ciphertext)).toBe(true);
    } finally {
      await db.close();
    }
  }, 120_000);
});

describe(title("FLT-27"), () => {
  it("the same key as new and previous is refused, saying so, and nothing is written", async () => {
    const store = newStore();
    try {
      const key = store.masterKey;
      const rotated = await runCli(["rotate-master-key"], { env: { DATABASE_URL: store.databaseUrl, KEYWARD_MASTER_KEY: key, KEYWARD_MASTER_KEY_PREVIOUS: ` ${key}\n` } });
      expect(rotated).toMatchObject({ code: 1, stdout: "" });
      expect(rotated.stderr).toMatch(/^keyward: KEYWARD_MASTER_KEY and KEYWARD_MASTER_KEY_PREVIOUS are the same key/);
      expect(rotated.stderr).not.toContain(key);
    } finally {
      await store.drop();
    }
  });
});
