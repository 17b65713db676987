import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { claimsOf, ISSUER } from "../helpers/oauth.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { signAgentToken } from "../../src/tokens/issue.js";
import { SigningKeys, type SigningKeyOptions } from "../../src/signing-keys/signing-keys.js";
import { parseMasterKey, Vault } from "../../src/vault/vault.js";
import { waitFor } from "../helpers/wait.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

const RELOAD_MS = 200;
const DAY_MS = 86_400_000;

describe("signing keys: rotation, retirement, replicas", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: Agent;
  let grant: { id: string };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store, { KEYWARD_CLOCK_SKEW_SECONDS: "0", KEYWARD_SIGNING_KEY_RELOAD_MS: String(RELOAD_MS) });
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "signing-keys-upstream-secret" });
    alice = await createAgent(broker, "alice");
    grant = await createGrant(broker, { name: "g", agents: [alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const get = (token: string) => broker.http().get("/proxy/api/x").set("authorization", `Bearer ${token}`);
  const kidOf = (token: string) => decodeProtectedHeader(token).kid!;
  const jwksKids = async () => ((await broker.http().get("/.well-known/jwks.json")).body.keys as { kid: string }[]).map((k) => k.kid);

  /** Another replica's view of the same database, with a clock of its own. */
  async function replica(now: () => Date = () => new Date()): Promise<SigningKeys> {
    const options: SigningKeyOptions = { reloadMs: RELOAD_MS, rotateAfterMs: 30 * DAY_MS, leewaySeconds: 0, onError: () => {}, now };
    return SigningKeys.open(broker.keyward.db.prisma, new Vault(parseMasterKey(store.masterKey)), options);
  }

  it("rotation: tokens from the old key stay valid until they expire; then the old key leaves the JWKS", async () => {
    const old = await tokenFor(broker, alice, { grant: "g", ttlSeconds: 6 });
    const oldKid = kidOf(old);

    const rotated = await broker.admin("post", "/v1/signing-keys/rotate");
    expect(rotated.status).toBe(201);
    expect(rotated.body.kid).not.toBe(oldKid);
    expect(await jwksKids()).toEqual(expect.arrayContaining([oldKid, rotated.body.kid]));

    const fresh = await tokenFor(broker, alice, { grant: "g" });
    expect(kidOf(fresh)).toBe(rotated.body.kid);
    expect((await get(old)).status).toBe(200);
    expect((await get(fresh)).status).toBe(200);

    // Past the grace of two reloads, but the old token has not expired: the old key stays.
    await new Promise((r) => setTimeout(r, 3 * RELOAD_MS));
    expect(await jwksKids()).toContain(oldKid);
    expect((await get(old)).status).toBe(200);
    const listed = (await broker.admin("get", "/v1/signing-keys")).body.signingKeys as { kid: string; active: boolean; retiredAt: string | null }[];
    expect(listed.find((k) => k.kid === oldKid)).toMatchObject({ active: false, retiredAt: null });
    expect(listed.find((k) => k.kid === rotated.body.kid)).toMatchObject({ active: true, retiredAt: null });

    // Once the old token has expired, the next maintenance run retires the key.
    await waitFor(async () => !(await jwksKids()).includes(oldKid), 15_000, "the old key to be retired", 100);
    expect((claimsOf(old).exp as number) * 1000).toBeLessThan(Date.now());
    expect((await get(old)).status).toBe(401);
    expect((await get(fresh)).status).toBe(200);

    const audit = (await broker.admin("get", "/v1/audit?kind=admin.change&limit=20")).body.events as { actor: string; details: { action: string; kid: string } }[];
    expect(audit.find((e) => e.details.action === "signing_key.rotate")).toMatchObject({ actor: expect.stringMatching(/^admin-key:/) });
    expect(audit.find((e) => e.details.action === "signing_key.retire")).toMatchObject({ actor: "system", details: { kid: oldKid } });
  });

  it("a token signed by a key Keyward never had is refused", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const forged = await new SignJWT({ client_id: alice.clientId, grant: grant.id, scope: "api:GET", cap: { upstream: "api", methods: ["GET"], paths: ["/**"] } })
      .setProtectedHeader({ alg: "ES256", kid: "made-up", typ: "at+jwt" })
      .setIssuer(ISSUER)
      .setSubject(alice.id)
      .setAudience("keyward")
      .setIssuedAt()
      .setExpirationTime("1m")
      .setJti("forged")
      .sign(privateKey);
    const res = await get(forged);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: { code: "invalid_token", message: "token signed by an unknown key" } });
  });

  it("rotates on schedule: once the active key is KEYWARD_SIGNING_KEY_ROTATE_DAYS old, exactly once across replicas", async () => {
    let clock = new Date();
    const [a, b] = [await replica(() => clock), await replica(() => clock)];
    const before = (await broker.admin("get", "/v1/signing-keys")).body.signingKeys as { kid: string; active: boolean }[];
    await a.maintain();
    expect((await broker.admin("get", "/v1/signing-keys")).body.signingKeys).toHaveLength(before.length);

    clock = new Date(Date.now() + 31 * DAY_MS);
    await Promise.all([a.maintain(), b.maintain()]);
    const after = (await broker.admin("get", "/v1/signing-keys")).body.signingKeys as { kid: string; active: boolean; createdAt: string }[];
    const added = after.filter((k) => !before.some((o) => o.kid === k.kid));
    expect(added).toHaveLength(1);
    expect(after.find((k) => k.active)!.kid).toBe(added[0]!.kid);
    expect(a.current().active.kid).toBe(added[0]!.kid);
    expect(b.current().active.kid).toBe(added[0]!.kid);
  });
});

describe("signing keys: maintenance that fails midway", () => {
  let store: Store;
  let broker: TestBroker;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store, { KEYWARD_SIGNING_KEY_RELOAD_MS: "3600000" });
  });

  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  it("still loads the keys other replicas made: it would go on signing with a key they retire", async () => {
    const replica = (now: () => Date) =>
      SigningKeys.open(broker.keyward.db.prisma, new Vault(parseMasterKey(store.masterKey)), { reloadMs: 3_600_000, rotateAfterMs: 30 * DAY_MS, leewaySeconds: 0, onError: () => {}, now });
    let clock = new Date();
    const [a, b] = [await replica(() => clock), await replica(() => clock)];
    const made = await b.rotate({ actor: "test" });
    expect(a.current().active.kid).not.toBe(made.kid);
    // This replica's own rotation, due by its clock, fails (the database refuses it); the reload must still run.
    const prisma = broker.keyward.db.prisma;
    await prisma.$executeRawUnsafe(`CREATE FUNCTION refuse_key_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'signing keys are read-only here'; END $$`);
    await prisma.$executeRawUnsafe(`CREATE TRIGGER refuse_key_writes BEFORE INSERT OR UPDATE ON "SigningKey" FOR EACH STATEMENT EXECUTE FUNCTION refuse_key_writes()`);
    try {
      clock = new Date(Date.now() + 31 * DAY_MS);
      await expect(a.maintain()).rejects.toThrow(/read-only/);
      expect(a.current().active.kid).toBe(made.kid);
    } finally {
      await prisma.$executeRawUnsafe(`DROP TRIGGER refuse_key_writes ON "SigningKey"`);
      await prisma.$executeRawUnsafe(`DROP FUNCTION refuse_key_writes()`);
    }
  });
});

describe("signing keys across replicas", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: Agent;
  let grant: { id: string };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    // The periodic reload is an hour away: only an unknown kid can make this replica reload.
    broker = await startBroker(store, { KEYWARD_SIGNING_KEY_RELOAD_MS: "3600000" });
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "replica-upstream-secret" });
    alice = await createAgent(broker, "alice");
    grant = await createGrant(broker, { name: "g", agents: [alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const get = (token: string) => broker.http().get("/proxy/api/x").set("authorization", `Bearer ${token}`);
  const jwksKids = async () => ((await broker.http().get("/.well-known/jwks.json")).body.keys as { kid: string }[]).map((k) => k.kid);

  it("a replica honours a key another replica created, at once (reload on an unknown kid)", async () => {
    const other = await SigningKeys.open(broker.keyward.db.prisma, new Vault(parseMasterKey(store.masterKey)), {
      reloadMs: 3_600_000,
      rotateAfterMs: 30 * DAY_MS,
      leewaySeconds: 5,
      onError: () => {},
    });
    const created = await other.rotate({ actor: "test" });
    expect(await jwksKids()).not.toContain(created.kid); // this replica has not reloaded...
    const signed = await signAgentToken(
      other.current(),
      { issuer: ISSUER, audience: "keyward", agentId: alice.id, clientId: alice.clientId, grantId: grant.id, upstream: "api" },
      { methods: ["GET"], paths: ["/**"], ttlSeconds: 60 },
    );
    expect((await get(signed.token)).status).toBe(200); // ...until a token named the new kid
    expect(await jwksKids()).toContain(created.kid);
    // And it signs with the newest key from then on.
    expect(decodeProtectedHeader(await tokenFor(broker, alice, { grant: "g" })).kid).toBe(created.kid);
  });
});
