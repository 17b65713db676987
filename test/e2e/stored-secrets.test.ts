import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashAdminKey } from "../../src/admin/keys.js";
import { verifyClientSecret } from "../../src/agents/client-secret.js";
import { newStore, startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent } from "../helpers/scenario.js";

// `scrypt$N$r$p$salt$hash` (src/agents/client-secret.ts): 16-byte salt, 32-byte hash, base64url.
const SCRYPT_HASH = /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/;

/**
 * Agent client secrets and admin keys are shown once, at creation, and never again: not by the API,
 * and not by the database, which holds only hashes of them.
 */
describe("stored secrets", () => {
  let store: Store;
  let broker: TestBroker;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  /** Every client secret the agent has had: the first, and the one a rotation gave it. */
  const agentSecrets: string[] = [];
  let createdAdminKey: string;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    agent = await createAgent(broker, "holder");
    agentSecrets.push(agent.clientSecret);
    // A rotation leaves the old secret's hash in previousSecretHash: that one must not leak either.
    const rotated = await broker.admin("post", `/v1/agents/${agent.id}/rotate-secret`, {});
    expect(rotated.status).toBe(200);
    agentSecrets.push(rotated.body.clientSecret);
    const created = await broker.admin("post", "/v1/admin-keys", { name: "second", role: "auditor" });
    expect(created.status).toBe(201);
    createdAdminKey = created.body.key;
  });

  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  /** Raw SQL, around Prisma, as someone reading a stolen database would. */
  const rows = async (sql: string, params: unknown[] = []) => {
    const session = await broker.keyward.db.session();
    try {
      return await session.query(sql, params);
    } finally {
      session.release();
    }
  };

  it("GET /v1/agents and GET /v1/agents/:id return neither the client secret nor its hash", async () => {
    const stored = await broker.keyward.db.prisma.agent.findUniqueOrThrow({ where: { id: agent.id } });
    const hashes = [stored.secretHash, stored.previousSecretHash!];
    const list = await broker.admin("get", "/v1/agents");
    const one = await broker.admin("get", `/v1/agents/${agent.id}`);
    expect(list.status).toBe(200);
    expect(one.status).toBe(200);
    expect(list.body.agents.map((a: { id: string }) => a.id)).toContain(agent.id);
    expect(one.body).toMatchObject({ id: agent.id, clientId: agent.clientId });
    for (const res of [list, one]) {
      for (const value of [...agentSecrets, ...hashes]) expect(res.text).not.toContain(value);
      expect(res.text).not.toMatch(/clientSecret|secretHash/i);
    }
  });

  it("the stored Agent row holds scrypt hashes of its secrets, never the secrets", async () => {
    const stored = await broker.keyward.db.prisma.agent.findUniqueOrThrow({ where: { id: agent.id } });
    expect(stored.secretHash).toMatch(SCRYPT_HASH);
    expect(stored.previousSecretHash).toMatch(SCRYPT_HASH);
    // Hashes of these very secrets, the current one in secretHash and the rotated-out one beside it.
    expect(await verifyClientSecret(agentSecrets[1]!, stored.secretHash)).toBe(true);
    expect(await verifyClientSecret(agentSecrets[0]!, stored.previousSecretHash!)).toBe(true);
    const [row] = await rows(`SELECT * FROM "Agent" WHERE id = $1`, [agent.id]);
    const text = JSON.stringify(row);
    for (const secret of agentSecrets) expect(text).not.toContain(secret);
  });

  it("the stored admin key rows hold only SHA-256 hashes of the keys", async () => {
    const stored = await rows(`SELECT * FROM "AdminKey" ORDER BY "createdAt"`);
    expect(stored).toHaveLength(2);
    expect(stored.map((r) => r.keyHash)).toEqual([hashAdminKey(TEST_ADMIN_KEY), hashAdminKey(createdAdminKey)]);
    const text = JSON.stringify(stored);
    for (const key of [TEST_ADMIN_KEY, createdAdminKey]) {
      expect(text).not.toContain(key);
      // Nor a recognisable part of it, as a stored "last characters" hint would be.
      expect(text).not.toContain(key.slice(-24));
    }
    // The API that lists them does not give the hashes out either.
    const listed = await broker.admin("get", "/v1/admin-keys");
    expect(listed.status).toBe(200);
    expect(listed.text).not.toMatch(/keyHash/);
    for (const r of stored) expect(listed.text).not.toContain(r.keyHash as string);
  });
});
