import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { cli, emptyHome, runCli } from "../helpers/cli.js";
import { basic, createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const UPSTREAM_SECRET = "real-upstream-secret-0123456789";

/** How `keyward` finds a store's database, and the master key a restore checks the backup's secrets against: as the broker would. */
const databaseEnv = (store: Store): Record<string, string> => ({
  ...(store.databaseUrl ? { DATABASE_URL: store.databaseUrl } : { KEYWARD_DATA_DIR: store.dataDir }),
  KEYWARD_MASTER_KEY: store.masterKey,
});

/** A fresh, empty store that shares `source`'s master key, as a restore target must. */
const emptyStoreFor = (source: Store): Store => ({ ...newStore(), masterKey: source.masterKey });

describe("keyward backup / restore", () => {
  const work = emptyHome();
  const backupFile = join(work, "keyward.jsonl");
  const stores: Store[] = [];
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let source: Store;
  let agent: { id: string; clientId: string; clientSecret: string };
  let revokedToken: string;
  let sourceHead: { id: string; hash: string };
  let sourceEvents: number;

  beforeAll(async () => {
    upstream = await startUpstream();
    source = newStore();
    stores.push(source);
    const broker = await startBroker(source);
    try {
      await createUpstream(broker, { name: "hosting-staging", baseUrl: upstream.url, environment: "staging", secret: UPSTREAM_SECRET });
      agent = await createAgent(broker, "deploy-bot");
      await createGrant(broker, { name: "deploy-staging", agents: [agent.id], upstream: "hosting-staging", methods: ["GET"], paths: ["/v1/**"] });
      revokedToken = await tokenFor(broker, agent, { grant: "deploy-staging" });
      expect((await broker.http().get("/proxy/hosting-staging/v1/a").set("authorization", `Bearer ${revokedToken}`)).status).toBe(200);
      const { jti } = JSON.parse(Buffer.from(revokedToken.split(".")[1]!, "base64url").toString());
      await broker.admin("post", "/v1/revocations", { jti, reason: "leaked" });
      const verified = (await broker.admin("get", "/v1/audit/verify")).body;
      expect(verified.ok).toBe(true);
      sourceHead = verified.head;
      sourceEvents = verified.checkedEvents;
    } finally {
      // An embedded database belongs to one process at a time: the broker stops before the backup.
      await broker.close();
    }
    await cli(["backup", "-o", backupFile], { env: databaseEnv(source) });
  }, 120_000);
  afterAll(async () => {
    await upstream?.close();
    for (const store of stores) await store.drop();
  });

  it("writes every table as JSON Lines, with secrets still encrypted and only hashes of keys", () => {
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    const lines = readFileSync(backupFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ format: "keyward-backup/2", migrations: expect.arrayContaining(["0001_init"]) });
    const tables = new Set(lines.slice(1).map((l) => l.table));
    for (const table of ["AdminKey", "Upstream", "Agent", "Grant", "GrantAgent", "SigningKey", "IssuedToken", "Revocation", "AuditEvent", "AuditChainHead"]) {
      expect(tables).toContain(table);
    }
    const text = readFileSync(backupFile, "utf8");
    for (const secret of [UPSTREAM_SECRET, agent.clientSecret, TEST_ADMIN_KEY, source.masterKey]) expect(text).not.toContain(secret);
    expect(lines.find((l) => l.table === "Upstream").row.secretCiphertext).toBeTruthy();
    expect(lines.filter((l) => l.table === "AuditEvent")).toHaveLength(sourceEvents);
  });

  it("restores into an empty database: same credentials, same secrets, same revocations, the same audit chain", async () => {
    const target = emptyStoreFor(source);
    stores.push(target);
    const restored = JSON.parse(await cli(["--json", "restore", backupFile], { env: databaseEnv(target) })).restored;
    expect(restored).toMatchObject({ Agent: 1, Upstream: 1, Grant: 1, AuditEvent: sourceEvents });

    const refused = await runCli(["restore", backupFile], { env: databaseEnv(target) });
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/the database is not empty .* restore only into an empty database/) });

    const broker: TestBroker = await startBroker(target);
    try {
      // The chain is the one that was backed up, and still verifies.
      expect((await broker.admin("get", "/v1/audit/verify")).body).toMatchObject({ ok: true, head: sourceHead, checkedEvents: sourceEvents });
      // The agent's secret (a hash in the backup) still works; the upstream secret decrypts under the same master key.
      const token = await tokenFor(broker, agent, { grant: "deploy-staging" });
      expect((await broker.http().get("/proxy/hosting-staging/v1/b").set("authorization", `Bearer ${token}`)).status).toBe(200);
      expect(upstream.received.at(-1)!.headers.authorization).toBe(`Bearer ${UPSTREAM_SECRET}`);
      // Revocations came along: the leaked token is still refused (its signing key was restored too).
      const old = await broker.http().get("/proxy/hosting-staging/v1/c").set("authorization", `Bearer ${revokedToken}`);
      expect(old.body.error.code).toBe("token_revoked");
      const wrong = await broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, "kws_wrong")).send({ grant: "deploy-staging" });
      expect(wrong.status).toBe(401);
      expect((await broker.admin("get", "/v1/audit/verify")).body.ok).toBe(true);
    } finally {
      await broker.close();
    }
  }, 120_000);

  it("refuses a backup whose audit log was altered, leaving the database empty", async () => {
    const lines = readFileSync(backupFile, "utf8").trim().split("\n");
    const i = lines.findIndex((l) => l.includes('"table":"AuditEvent"') && l.includes('"kind":"revocation.created"'));
    const event = JSON.parse(lines[i]!);
    event.row.reason = "nothing to see here";
    lines[i] = JSON.stringify(event);
    const tampered = join(work, "tampered.jsonl");
    writeFileSync(tampered, lines.join("\n") + "\n");

    const target = emptyStoreFor(source);
    stores.push(target);
    const refused = await runCli(["restore", tampered], { env: databaseEnv(target) });
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/audit log does not verify at event \d+: its content does not match its hash/) });
    const header = JSON.parse(lines[0]!);
    writeFileSync(join(work, "future.jsonl"), [JSON.stringify({ ...header, migrations: [...header.migrations, "9999_future"] }), ...lines.slice(1)].join("\n"));
    const future = await runCli(["restore", join(work, "future.jsonl")], { env: databaseEnv(target) });
    expect(future).toMatchObject({ code: 1, stderr: expect.stringMatching(/schema version 9999_future, which this Keyward does not know/) });
    writeFileSync(join(work, "not-a-backup.jsonl"), '{"hello":"world"}\n');
    const notBackup = await runCli(["restore", join(work, "not-a-backup.jsonl")], { env: databaseEnv(target) });
    expect(notBackup).toMatchObject({ code: 1, stderr: expect.stringMatching(/not a Keyward backup/) });
    // Nothing was left half-restored: the real backup still goes in.
    await cli(["restore", backupFile], { env: databaseEnv(target) });
  }, 120_000);
});
