import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PrismaClient } from "@prisma/client";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { reencryptSecrets } from "../../src/vault/reencrypt.js";
import { parseMasterKey, Vault } from "../../src/vault/vault.js";

const UPSTREAMS = ["alpha", "beta", "gamma"] as const;
const secretOf = (name: string) => `master-rotation-secret-${name}`;

function openStore(store: Store): Promise<Database> {
  return openDatabase({ kind: "postgres", url: store.databaseUrl });
}

/** Every encrypted value in the database, as the rotation sees them. */
async function ciphertexts(prisma: PrismaClient): Promise<string[]> {
  const upstreams = await prisma.upstream.findMany({ select: { secretCiphertext: true } });
  const keys = await prisma.signingKey.findMany({ select: { privateCiphertext: true } });
  return [...upstreams.map((u) => u.secretCiphertext), ...keys.map((k) => k.privateCiphertext)];
}

/** The database as a process that dies while writing its Nth row would leave it: that row rolled back. */
function dyingAt(prisma: PrismaClient, fatalTransaction: number): PrismaClient {
  let transactions = 0;
  return new Proxy(prisma, {
    get(target, property, receiver) {
      if (property !== "$transaction") return Reflect.get(target, property, receiver);
      return (fn: (tx: unknown) => Promise<unknown>) =>
        target.$transaction(async (tx) => {
          const result = await fn(tx);
          if (++transactions === fatalTransaction) throw new Error("power cut before commit");
          return result;
        });
    },
  });
}

describe("master-key rotation", () => {
  let store: Store;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let tokenBefore: string;
  const oldKey = () => store.masterKey;
  const newKey = randomBytes(32).toString("base64");

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    const broker = await startBroker(store);
    for (const name of UPSTREAMS) {
      await createUpstream(broker, { name, baseUrl: upstream.url, environment: "staging", secret: secretOf(name) });
    }
    agent = await createAgent(broker, "agent");
    for (const name of UPSTREAMS) {
      await createGrant(broker, { name: `g-${name}`, agents: [agent.id], upstream: name, methods: ["GET"], paths: ["/**"] });
    }
    expect((await broker.admin("post", "/v1/signing-keys/rotate")).status).toBe(201); // two signing keys
    tokenBefore = await tokenFor(broker, agent, { grant: "g-alpha" });
    await broker.close();
  });

  afterAll(async () => {
    await upstream?.close();
    await store?.drop();
  });

  async function expectWorkingBroker(broker: TestBroker) {
    for (const name of UPSTREAMS) {
      const token = await tokenFor(broker, agent, { grant: `g-${name}` });
      const res = await broker.http().get(`/proxy/${name}/x`).set("authorization", `Bearer ${token}`);
      expect(res.status).toBe(200);
      expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${secretOf(name)}`);
    }
    // A token signed before the rotation still verifies: public keys were never encrypted.
    expect((await broker.http().get("/proxy/alpha/x").set("authorization", `Bearer ${tokenBefore}`)).status).toBe(200);
  }

  it("interrupted between rows and in the middle of one, then resumed: every secret ends under the new key, none lost", async () => {
    const db = await openStore(store);
    try {
      const vault = new Vault(parseMasterKey(newKey), parseMasterKey(oldKey()));
      const total = (await ciphertexts(db.prisma)).length;
      expect(total).toBe(UPSTREAMS.length + 2);

      // Stopped after two rows (as by a batch limit, or a kill between transactions).
      expect(await reencryptSecrets(db.prisma, vault, { actor: "test", maxRows: 2 })).toEqual({ reencrypted: 2, remaining: total - 2 });

      // Dies while writing the next row: its transaction rolls back, nothing half-written.
      await expect(reencryptSecrets(dyingAt(db.prisma, 1), vault, { actor: "test" })).rejects.toThrow("power cut");
      const midway = await ciphertexts(db.prisma);
      expect(midway.filter((c) => vault.isCurrent(c))).toHaveLength(2);
      // Half-way, the broker's vault (new key + previous) reads everything.
      const upstreams = await db.prisma.upstream.findMany();
      for (const u of upstreams) expect(() => vault.decrypt(u.secretCiphertext, `upstream-secret:${u.id}`)).not.toThrow();

      // Resumed: the rest, and only the rest.
      expect(await reencryptSecrets(db.prisma, vault, { actor: "test" })).toEqual({ reencrypted: total - 2, remaining: 0 });
      // Idempotent: nothing left to do.
      expect(await reencryptSecrets(db.prisma, vault, { actor: "test" })).toEqual({ reencrypted: 0, remaining: 0 });

      const newOnly = new Vault(parseMasterKey(newKey));
      for (const c of await ciphertexts(db.prisma)) expect(newOnly.isCurrent(c)).toBe(true);
      for (const u of await db.prisma.upstream.findMany()) expect(u.secretKeyId).toBe(newOnly.keyId);
      const oldOnly = new Vault(parseMasterKey(oldKey()));
      for (const u of await db.prisma.upstream.findMany()) {
        expect(() => oldOnly.decrypt(u.secretCiphertext, `upstream-secret:${u.id}`)).toThrow();
      }
      const audited = await db.prisma.auditEvent.count({ where: { kind: "admin.change", actor: "test" } });
      expect(audited).toBe(total);
    } finally {
      await db.close();
    }

    // The broker runs on the new key alone: secrets injected, signing keys usable.
    const broker = await startBroker(store, { KEYWARD_MASTER_KEY: newKey });
    try {
      await expectWorkingBroker(broker);
    } finally {
      await broker.close();
    }
  });

  it("npm run rotate-master-key and keyward rotate-master-key do the same, and insist on both keys", async () => {
    const newerKey = randomBytes(32).toString("base64");
    const script = ["npm", "run", "--silent", "rotate-master-key"];
    const cli = [process.execPath, join(process.cwd(), "bin/keyward.js"), "rotate-master-key"];
    const run = ([command, ...args]: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(command!, args, {
          env: {
            PATH: process.env.PATH ?? "",
            HOME: process.env.HOME ?? "/tmp",
            KEYWARD_DATA_DIR: store.dataDir,
            LOG_LEVEL: "silent",
            ...(store.databaseUrl && { DATABASE_URL: store.databaseUrl }),
            ...env,
          },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        child.stdout.on("data", (c) => (output += c));
        child.stderr.on("data", (c) => (output += c));
        child.on("exit", (code) => resolve({ code, output }));
      });

    for (const command of [script, cli]) {
      const missing = await run(command, { KEYWARD_MASTER_KEY: newerKey });
      expect(missing.code).toBe(1);
      expect(missing.output).toMatch(/KEYWARD_MASTER_KEY_PREVIOUS/);
    }

    const done = await run(cli, { KEYWARD_MASTER_KEY: newerKey, KEYWARD_MASTER_KEY_PREVIOUS: newKey });
    expect(done.output).toContain(`re-encrypted ${UPSTREAMS.length + 2} secret(s); 0 still under another key`);
    expect(done.code).toBe(0);
    // Run again, it finds nothing left under the previous key.
    const again = await run(script, { KEYWARD_MASTER_KEY: newerKey, KEYWARD_MASTER_KEY_PREVIOUS: newKey });
    expect(again.output).toContain("re-encrypted 0 secret(s); 0 still under another key");
    expect(again.code).toBe(0);

    const broker = await startBroker(store, { KEYWARD_MASTER_KEY: newerKey });
    try {
      await expectWorkingBroker(broker);
    } finally {
      await broker.close();
    }
  }, 60_000);
});
