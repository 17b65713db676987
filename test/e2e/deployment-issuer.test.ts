import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, inject } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * Brokers started as the README says, without KEYWARD_ISSUER. Their PORT differs, as on real replicas,
 * so their own default issuers (http://HOST:PORT) differ: the test helper listens on a free port whatever
 * PORT says, and PORT only names the default issuer here.
 */
const unconfigured = (port: number) => ({ KEYWARD_ISSUER: undefined as unknown as string, PORT: String(port) });
const issOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).iss as string;

describe("one issuer per deployment", () => {
  const stores: Store[] = [];
  const brokers: TestBroker[] = [];
  const fresh = () => {
    const store = newStore();
    stores.push(store);
    return store;
  };
  const start = async (store: Store, env: Record<string, string>) => {
    const broker = await startBroker(store, env);
    brokers.push(broker);
    return broker;
  };
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.drop()));
  });

  it("a broker restarted on another port without KEYWARD_ISSUER keeps the issuer its tokens were issued under", async () => {
    const store = fresh();
    const upstream = await startUpstream();
    const first = await start(store, unconfigured(18_081));
    const agent = await createAgent(first, "a");
    await createUpstream(first, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "s-1" });
    await createGrant(first, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    const token = await tokenFor(first, agent, { grant: "g" });
    expect(issOf(token)).toBe("http://127.0.0.1:18081");
    await first.close();
    brokers.splice(0);

    const again = await start(store, unconfigured(18_082));
    try {
      const res = await again.http().get("/proxy/api/x").set("authorization", `Bearer ${token}`);
      expect(res.status, res.text).toBe(200);
      const metadata = await again.http().get("/.well-known/oauth-authorization-server");
      expect(metadata.body.issuer).toBe("http://127.0.0.1:18081");
      expect(metadata.body.token_endpoint).toBe("http://127.0.0.1:18081/oauth2/token");
      expect(issOf(await tokenFor(again, agent, { grant: "g" }))).toBe("http://127.0.0.1:18081");
    } finally {
      await upstream.close();
    }
  });

  it("a broker whose KEYWARD_ISSUER disagrees with the deployment's refuses to start, saying which is which and what to do", async () => {
    const store = fresh();
    await start(store, { KEYWARD_ISSUER: "https://keyward.example" });
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    const refused = startBroker(store, { KEYWARD_ISSUER: "https://other.example" });
    await expect(refused).rejects.toThrow(
      "KEYWARD_ISSUER is https://other.example, but this deployment's issuer is https://keyward.example (set by KEYWARD_ISSUER",
    );
    await expect(refused).rejects.toThrow("set KEYWARD_ISSUER=https://keyward.example, or leave it unset");
    // The refused broker changed nothing: the deployment's issuer is still the first one.
    const same = await start(store, unconfigured(18_083));
    expect((await same.http().get("/.well-known/oauth-authorization-server")).body.issuer).toBe("https://keyward.example");
  });

  it("an explicit KEYWARD_ISSUER on a deployment whose first broker recorded its own address is refused too", async () => {
    const store = fresh();
    await start(store, unconfigured(18_084));
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    await expect(startBroker(store, { KEYWARD_ISSUER: "https://keyward.example" })).rejects.toThrow(
      "but this deployment's issuer is http://127.0.0.1:18084 (the first broker's own address",
    );
  });
});

describe("two replicas without KEYWARD_ISSUER", () => {
  let store: Store;
  let a: TestBroker;
  let b: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    // The schema exists before replicas start, as "public" does in production: two brokers creating the
    // same schema at once race in CREATE SCHEMA IF NOT EXISTS (src/db/database.ts), which is not this test.
    const pgAdmin = new pg.Client({ connectionString: inject("testDatabaseUrl") });
    await pgAdmin.connect();
    await pgAdmin.query(`CREATE SCHEMA "${new URL(store.databaseUrl!).searchParams.get("schema")}"`);
    await pgAdmin.end();
    // Started together, as a deployment's replicas are: both try to record their own issuer, one wins.
    [a, b] = await Promise.all([startBroker(store, unconfigured(18_091)), startBroker(store, unconfigured(18_092))]);
    await createUpstream(a, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "replica-issuer-secret" });
    agent = await createAgent(a, "replicated");
    await createGrant(a, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = (broker: TestBroker, token: string) => broker.http().get("/proxy/api/x").set("authorization", `Bearer ${token}`);

  it("a token from either replica works on both", async () => {
    const fromA = await tokenFor(a, agent, { grant: "g" });
    const fromB = await tokenFor(b, agent, { grant: "g" });
    expect(issOf(fromA)).toBe(issOf(fromB));
    expect(["http://127.0.0.1:18091", "http://127.0.0.1:18092"]).toContain(issOf(fromA));
    for (const [broker, token] of [[a, fromA], [b, fromA], [a, fromB], [b, fromB]] as const) {
      const res = await call(broker, token);
      expect(res.status, res.text).toBe(200);
    }
  });

  it("the discovery document and the JWKS are identical on both", async () => {
    for (const path of ["/.well-known/oauth-authorization-server", "/.well-known/jwks.json"]) {
      const [fromA, fromB] = await Promise.all([a.http().get(path), b.http().get(path)]);
      expect(fromA.status).toBe(200);
      expect(fromB.body).toEqual(fromA.body);
    }
  });

  it("a third replica configured with another issuer refuses to start; one configured with the deployment's starts", async () => {
    const deployment = (await a.http().get("/.well-known/oauth-authorization-server")).body.issuer as string;
    await expect(startBroker(store, { KEYWARD_ISSUER: "http://keyward.test" })).rejects.toThrow(
      `KEYWARD_ISSUER is http://keyward.test, but this deployment's issuer is ${deployment}`,
    );
    const c = await startBroker(store, { KEYWARD_ISSUER: deployment });
    try {
      const token = await tokenFor(c, agent, { grant: "g" });
      expect((await call(a, token)).status).toBe(200);
      expect((await call(b, token)).status).toBe(200);
    } finally {
      await c.close();
    }
  });
});
