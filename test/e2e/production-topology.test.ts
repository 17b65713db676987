import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { newStore, TEST_ADMIN_KEY, type Store } from "../helpers/broker.js";
import { startBrokerProcess, type BrokerProcess } from "../helpers/broker-process.js";
import { HAPROXY, startHaproxy, type LoadBalancer } from "../helpers/haproxy.js";
import { freePort } from "../helpers/pg-cluster.js";
import { basic } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;
/** The health check's interval here (deploy/haproxy.cfg says 2 s; fall and rise, 2 each, are as deployed). */
const CHECK_INTERVAL_MS = 200;
/** How long a dead replica may stay in rotation: `fall` failed checks, with slack for a loaded machine. */
const OUT_OF_ROTATION_WITHIN_MS = 2 * CHECK_INTERVAL_MS + 1_500;
const CONCURRENCY = 16;

// It times health checks and rotation, so it runs alone, after the rest of the suite (.ci/run does that):
// beside three other busy test workers on two cores, rotation timing measures the machine, not HAProxy.
const ALONE = process.env.KEYWARD_TOPOLOGY_TEST === "1";
if (!HAPROXY) console.warn("production topology test skipped: haproxy is not installed (apt-get install -y haproxy)");
else if (!ALONE) console.warn("production topology test skipped: it runs alone, with KEYWARD_TOPOLOGY_TEST=1 (see .ci/run)");

/**
 * docker-compose.yml's topology without Docker: HAProxy from Debian with deploy/haproxy.cfg (its Docker
 * DNS discovery replaced by two fixed servers), two broker processes started as `npm start` does, the
 * machine's PostgreSQL. The replicas run without KEYWARD_ISSUER, each on its own port.
 */
describe.skipIf(!HAPROXY || !ALONE)("production topology: HAProxy, two broker processes, PostgreSQL (needs haproxy)", () => {
  let store: Store;
  let schema: string;
  let db: pg.Client;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const ports: number[] = [];
  const brokers: (BrokerProcess | undefined)[] = [];
  let lb: LoadBalancer;
  let agent: { id: string; clientId: string; clientSecret: string };

  // Two processes starting together on a loaded two-core machine (each compiles the TypeScript with tsx)
  // may take well over a minute.
  const startReplica = (i: number) =>
    startBrokerProcess(
      store,
      { PORT: String(ports[i]), KEYWARD_ISSUER: undefined as unknown as string, KEYWARD_REVOCATION_MAX_STALENESS_MS: "2000" },
      { startTimeoutMs: 180_000 },
    );
  const http = (base: string, path: string, init: RequestInit = {}) => fetch(`${base}${path}`, init);
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await http(lb.url, path, {
      method,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const tokenFrom = async (base: string) => {
    const res = await http(base, "/v1/tokens", {
      method: "POST",
      headers: { authorization: basic(agent.clientId, agent.clientSecret), "content-type": "application/json" },
      body: JSON.stringify({ grant: "g" }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  };
  const call = async (base: string, token: string, path = "/ok") => {
    const res = await http(base, `/proxy/api${path}`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    return { status: res.status, requestId: res.headers.get("x-request-id"), servedBy: res.headers.get("x-served-by") };
  };
  /** Calls /readyz through the balancer until every named replica has answered. */
  const untilServedBy = async (names: string[], withinMs: number) => {
    const seen = new Set<string>();
    await waitFor(
      async () => {
        const res = await http(lb.url, "/readyz").catch(() => null);
        const by = res?.headers.get("x-served-by");
        if (res?.status === 200 && by) seen.add(by);
        return names.every((n) => seen.has(n));
      },
      withinMs,
      () => `${names.join(", ")} in rotation, saw only ${[...seen].join(", ") || "none"}\n${lb.output()}`,
      20,
    );
  };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    schema = new URL(store.databaseUrl!).searchParams.get("schema")!;
    db = new pg.Client({ connectionString: inject("testDatabaseUrl") });
    await db.connect();
    // The schema exists before the replicas start, as "public" does in production.
    await db.query(`CREATE SCHEMA "${schema}"`);
    ports.push(await freePort(), await freePort());
    brokers.push(...(await Promise.all([startReplica(0), startReplica(1)])));
    lb = await startHaproxy({
      port: await freePort(),
      servers: ports.map((port, i) => ({ name: `broker${i + 1}`, address: `127.0.0.1:${port}` })),
      checkIntervalMs: CHECK_INTERVAL_MS,
    });
    await untilServedBy(["broker1", "broker2"], 15_000);
    expect((await admin("POST", "/v1/upstreams", {
      name: "api",
      baseUrl: upstream.url,
      environment: "staging",
      secret: "topology-secret",
      auth: { type: "header", header: "Authorization", template: "Bearer {secret}" },
    })).status).toBe(201);
    const created = await admin("POST", "/v1/agents", { name: "topology" });
    expect(created.status).toBe(201);
    agent = created.body as typeof agent;
    const grant = await admin("POST", "/v1/grants", {
      name: "g",
      agents: [agent.id],
      upstream: "api",
      methods: ["GET"],
      paths: ["/**"],
      deny: [{ method: "GET", path: "/forbidden" }],
    });
    expect(grant.status).toBe(201);
  }, 400_000);

  afterAll(async () => {
    await lb?.stop();
    await Promise.all(brokers.map((b) => b?.stop()));
    await db?.end();
    await upstream?.close();
    await store?.drop();
  });

  it("tokens from either replica work on both, directly and through the balancer", async () => {
    const tokens = [await tokenFrom(`http://127.0.0.1:${ports[0]}`), await tokenFrom(`http://127.0.0.1:${ports[1]}`), await tokenFrom(lb.url)];
    const servedBy = new Set<string>();
    for (const token of tokens) {
      for (const port of ports) expect((await call(`http://127.0.0.1:${port}`, token)).status).toBe(200);
      for (let i = 0; i < 4; i++) {
        const res = await call(lb.url, token);
        expect(res.status).toBe(200);
        servedBy.add(res.servedBy!);
      }
    }
    expect([...servedBy].sort()).toEqual(["broker1", "broker2"]);
    const [jwks1, jwks2] = await Promise.all(ports.map((p) => http(`http://127.0.0.1:${p}`, "/.well-known/jwks.json").then((r) => r.json())));
    expect(jwks2).toEqual(jwks1);
  });

  it("a revocation made through the balancer holds on the next call through it, whichever replica each lands on", async () => {
    const landed = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const token = await tokenFrom(lb.url);
      // Round robin: four calls per round would put every next call on the same replica; one more call
      // every other round alternates it.
      if (i % 2 === 1) await http(lb.url, "/healthz");
      expect((await call(lb.url, token)).status).toBe(200);
      expect((await admin("POST", "/v1/revocations", { jti: jtiOf(token), reason: "topology test" })).status).toBe(201);
      const next = await call(lb.url, token);
      landed.add(next.servedBy!);
      expect(next.status, `call ${i} after the revocation, on ${next.servedBy}`).toBe(401);
    }
    expect(landed.size).toBe(2);
  });

  it("a replica killed under load leaves the rotation on its health check with no wrong decision and no lost audit event, and rejoins", async () => {
    const allowed = await tokenFrom(lb.url);
    const revoked = await tokenFrom(lb.url);
    expect((await admin("POST", "/v1/revocations", { jti: jtiOf(revoked), reason: "before the load" })).status).toBe(201);
    const kinds = [
      { name: "allowed", token: allowed, path: "/ok", expected: 200 },
      { name: "denied", token: allowed, path: "/forbidden", expected: 403 },
      { name: "revoked", token: revoked, path: "/ok", expected: 401 },
    ];
    type Result = { kind: (typeof kinds)[number]; status: number; requestId: string | null; servedBy: string | null; at: number };
    const results: Result[] = [];
    const receivedBefore = upstream.received.length;
    let running = true;
    let n = 0;
    const worker = async () => {
      while (running) {
        const kind = kinds[n++ % kinds.length]!;
        const res = await call(lb.url, kind.token, kind.path).catch(() => ({ status: 0, requestId: null, servedBy: null }));
        results.push({ kind, ...res, at: Date.now() });
      }
    };
    const workers = Array.from({ length: CONCURRENCY }, worker);

    await sleep(1_500);
    const killedAt = Date.now();
    await brokers[1]!.kill();
    brokers[1] = undefined;
    await sleep(OUT_OF_ROTATION_WITHIN_MS + 1_500);
    const restartedAt = Date.now();
    brokers[1] = await startReplica(1);
    await waitFor(() => results.some((r) => r.at > restartedAt && r.servedBy === "broker2"), 20_000, () => `broker2 to rejoin\n${lb.output()}`, 50);
    await sleep(1_000);
    running = false;
    await Promise.all(workers);

    const fromBrokers = results.filter((r) => r.requestId !== null);
    const fromBalancer = results.filter((r) => r.requestId === null);
    console.log(
      `${results.length} calls: ${fromBrokers.length} answered by a replica, ${fromBalancer.length} by the balancer ` +
        `(statuses ${[...new Set(fromBalancer.map((r) => r.status))].join(", ") || "none"}); ` +
        `broker2 restarted ${((restartedAt - killedAt) / 1000).toFixed(1)} s after the kill, back in rotation ` +
        `${((results.find((r) => r.at > restartedAt && r.servedBy === "broker2")!.at - restartedAt) / 1000).toFixed(1)} s after its restart began`,
    );
    expect(results.filter((r) => r.at < killedAt).length).toBeGreaterThan(50);

    // No wrong decision: every answer from a replica is the one its call deserves.
    const wrong = fromBrokers.filter((r) => r.status !== r.kind.expected);
    expect(wrong.map((r) => `${r.kind.name} → ${r.status} on ${r.servedBy}`)).toEqual([]);
    // Only calls in flight on the killed replica fail, at the balancer: never a decision, never later.
    expect(fromBalancer.length).toBeLessThanOrEqual(CONCURRENCY);
    // 502/503/504 from the balancer, or 0: a response cut off mid-way when its replica died.
    for (const r of fromBalancer) expect([0, 502, 503, 504]).toContain(r.status);
    expect(fromBalancer.filter((r) => r.at > killedAt + OUT_OF_ROTATION_WITHIN_MS)).toEqual([]);
    // Out of rotation once its checks failed, until it was back.
    const whileDead = results.filter((r) => r.at > killedAt + OUT_OF_ROTATION_WITHIN_MS && r.at < restartedAt);
    expect(whileDead.length).toBeGreaterThan(50);
    expect(whileDead.filter((r) => r.servedBy !== "broker1")).toEqual([]);

    // No lost audit event: every call a replica answered is in the audit log with the outcome it was sent.
    // Each replica ships its spool behind the calls, and the restarted one ships what the killed one had
    // spooled (src/audit/spool.ts): within moments, not at once.
    const lostEvents = async () => {
      const rows = (
        await db.query<{ requestId: string; kind: string; decision: string; status: number | null }>(
          `SELECT "requestId", kind, decision, status FROM "${schema}"."AuditEvent" WHERE "requestId" = ANY($1)`,
          [fromBrokers.map((r) => r.requestId)],
        )
      ).rows;
      const byRequest = new Map<string, typeof rows>();
      for (const row of rows) byRequest.set(row.requestId, [...(byRequest.get(row.requestId) ?? []), row]);
      return fromBrokers.filter((r) => {
        const events = byRequest.get(r.requestId!) ?? [];
        if (r.kind.expected === 200) return !events.some((e) => e.kind === "proxy.response" && e.status === 200);
        return !events.some((e) => e.kind === "proxy" && e.decision === "deny" && e.status === r.status);
      });
    };
    let lost = await lostEvents();
    await waitFor(async () => (lost = await lostEvents()).length === 0, 15_000, () => `audit events of ${lost.length} answered calls`).catch(() => {});
    expect(lost.map((r) => `${r.kind.name} ${r.requestId}`)).toEqual([]);
    // Nothing reached the upstream without an allow decision in the log.
    const allows = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${schema}"."AuditEvent" WHERE kind = 'proxy' AND decision = 'allow' AND path = '/ok' AND jti = $1`,
      [jtiOf(allowed)],
    );
    expect(upstream.received.length - receivedBefore).toBeLessThanOrEqual(Number(allows.rows[0]!.n));
  }, 300_000);
});
