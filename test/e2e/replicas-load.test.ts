import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startBrokerProcess, type BrokerProcess } from "../helpers/broker-process.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

const REQUESTS = Number(process.env.LOAD_REQUESTS ?? 10_000);
const CLIENTS_PER_REPLICA = 32;

/** One of each kind of call: allowed reads and writes, denied by rule, by path, by method, and a revoked token. */
const MIX = [
  { method: "GET", path: "/v1/items", token: "live", status: 200 },
  { method: "POST", path: "/v1/items", token: "live", status: 200 },
  { method: "GET", path: "/v1/items/42", token: "live", status: 200 },
  { method: "DELETE", path: "/v1/items/42", token: "live", status: 403 },
  { method: "GET", path: "/admin/users", token: "live", status: 403 },
  { method: "PUT", path: "/v1/items/42", token: "live", status: 403 },
  { method: "GET", path: "/v1/items", token: "revoked", status: 401 },
] as const;

describe("load across two replicas", () => {
  let store: Store;
  /** Sets the scene and checks the outcome; idle during the load. */
  let admin: TestBroker;
  /** Two replica processes, on separate cores as real ones would be. */
  let replicas: BrokerProcess[];
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const tokens = { live: [] as string[], revoked: "" };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    admin = await startBroker(store, { LOG_LEVEL: "warn" });
    const a = admin;
    await createUpstream(a, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "load-test-secret-value" });
    for (let i = 0; i < 4; i++) {
      const agent = await createAgent(a, `load-${i}`);
      await createGrant(a, { name: `g-${i}`, agents: [agent.id], upstream: "api", methods: ["GET", "POST", "DELETE"], paths: ["/v1/**"], deny: [{ method: "DELETE" }] });
      tokens.live.push(await tokenFor(a, agent, { grant: `g-${i}` }));
    }
    const doomed = await createAgent(a, "load-revoked");
    await createGrant(a, { name: "g-revoked", agents: [doomed.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    tokens.revoked = await tokenFor(a, doomed, { grant: "g-revoked" });
    expect((await a.admin("post", "/v1/revocations", { agentId: doomed.id })).status).toBe(201);
    replicas = await Promise.all([startBrokerProcess(store), startBrokerProcess(store)]);
  });

  afterAll(async () => {
    await Promise.all((replicas ?? []).map((r) => r.stop()));
    await admin?.close();
    await upstream?.close();
    await store?.drop();
  });

  it(`${REQUESTS} mixed calls from concurrent clients → exactly ${REQUESTS} proxy events, one chain, no duplicates`, async () => {
    const pools = replicas.map((r) => new Pool(r.url, { connections: CLIENTS_PER_REPLICA }));
    const mismatches: string[] = [];
    let next = 0;
    const started = performance.now();
    const client = async (pool: Pool) => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const call = MIX[i % MIX.length]!;
        const token = call.token === "live" ? tokens.live[i % tokens.live.length]! : tokens.revoked;
        const res = await pool.request({
          method: call.method,
          path: `/proxy/api${call.path}`,
          headers: { authorization: `Bearer ${token}`, ...(call.method === "POST" && { "content-type": "application/json" }) },
          body: call.method === "POST" ? `{"n":${i}}` : undefined,
        });
        await res.body.dump();
        if (res.statusCode !== call.status) mismatches.push(`${call.method} ${call.path}: ${res.statusCode}`);
      }
    };
    await Promise.all(pools.flatMap((pool) => Array.from({ length: CLIENTS_PER_REPLICA }, () => client(pool))));
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(pools.map((p) => p.close()));
    console.log(`${REQUESTS} proxied calls over 2 replicas, ${2 * CLIENTS_PER_REPLICA} clients: ${seconds.toFixed(1)} s, ${Math.round(REQUESTS / seconds)}/s`);
    expect(mismatches.slice(0, 5)).toEqual([]);

    const { prisma } = admin.keyward.db;
    const allowed = Array.from({ length: REQUESTS }, (_, i) => MIX[i % MIX.length]!).filter((m) => m.status === 200).length;
    // Each replica ships its spooled events behind the calls (src/audit/log.ts): all of them within moments.
    await vi.waitFor(async () => expect(await prisma.auditEvent.count({ where: { kind: { in: ["proxy", "proxy.response"] } } })).toBe(REQUESTS + allowed), {
      timeout: 20_000,
      interval: 200,
    });
    const proxyEvents = await prisma.auditEvent.findMany({ where: { kind: "proxy" }, select: { requestId: true, decision: true } });
    expect(proxyEvents).toHaveLength(REQUESTS);
    expect(new Set(proxyEvents.map((e) => e.requestId)).size).toBe(REQUESTS);
    expect(proxyEvents.filter((e) => e.decision === "allow")).toHaveLength(allowed);
    expect(await prisma.auditEvent.count({ where: { kind: "proxy.response" } })).toBe(allowed);
    expect(upstream.received).toHaveLength(allowed);

    const verifyStarted = performance.now();
    const verification = (await admin.admin("get", "/v1/audit/verify")).body;
    console.log(`verified ${verification.checkedEvents} chained events in ${Math.round(performance.now() - verifyStarted)} ms`);
    expect(verification).toMatchObject({ ok: true, firstBroken: null });
    expect(verification.checkedEvents).toBe(await prisma.auditEvent.count());
  }, 300_000);
});
