import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { waitFor } from "../helpers/wait.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;

/**
 * Asserted bounds on propagation between replicas (LISTEN/NOTIFY; measured on a quiet machine: a median
 * of 15-40 ms, at most ~130 ms). The suite shares two cores among four test workers, so a single sample
 * may wait on a busy event loop: the median is held tight, every sample to a bound still well inside B's
 * staleness bound, past which B would fail closed anyway.
 */
const PROPAGATION_MEDIAN_BOUND_MS = 100;
const PROPAGATION_BOUND_MS = 750;
/** Replica B's staleness bound in these tests, and how long the resync safety net waits (never, here). */
const B_MAX_STALENESS_MS = 1000;

describe("two replicas on one PostgreSQL", () => {
  let store: Store;
  let a: TestBroker;
  let b: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let admin: pg.Client;
  let schema: string;
  let aListenerPid: number;
  let bListenerPid: number;

  /** B keeps current only through notifications: its full resync is effectively off. */
  const startB = () =>
    startBroker(store, {
      KEYWARD_REVOCATION_RESYNC_MS: "600000",
      KEYWARD_REVOCATION_MAX_STALENESS_MS: String(B_MAX_STALENESS_MS),
    });
  const listenerPids = async () =>
    (
      await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [`keyward-listener:${schema}`])
    ).rows.map((r) => r.pid);

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    schema = new URL(store.databaseUrl!).searchParams.get("schema")!;
    admin = new pg.Client({ connectionString: inject("testDatabaseUrl") });
    await admin.connect();
    a = await startBroker(store);
    [aListenerPid] = (await listenerPids()) as [number];
    b = await startB();
    bListenerPid = (await listenerPids()).find((pid) => pid !== aListenerPid)!;
    // Each replica holds a LISTEN connection of its own.
    expect([aListenerPid, bListenerPid]).toEqual([expect.any(Number), expect.any(Number)]);
    await createUpstream(a, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "replica-test-secret" });
    agent = await createAgent(a, "replicated");
    await createGrant(a, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await admin?.end();
    await upstream?.close();
    await store?.drop();
  });

  const call = (broker: TestBroker, token: string) => broker.http().get("/proxy/api/x").set("authorization", `Bearer ${token}`);
  const revokeOnA = async (body: object) => {
    const res = await a.admin("post", "/v1/revocations", body);
    expect(res.status).toBe(201);
  };
  /** Calls B back to back until it answers `status`; returns how long that took. */
  const untilB = async (token: string, status: number, withinMs: number): Promise<number> => {
    const started = performance.now();
    let last = "";
    await waitFor(
      async () => {
        const res = await call(b, token);
        last = `${res.status} ${res.text}`;
        return res.status === status;
      },
      withinMs,
      () => `B to answer ${status}; it still answers ${last}`,
      0,
    );
    return performance.now() - started;
  };

  it(`a revocation on A stops the token on B within ${PROPAGATION_MEDIAN_BOUND_MS} ms (median)`, async () => {
    const samples: number[] = [];
    for (let i = 0; i < 20; i++) {
      const token = await tokenFor(a, agent, { grant: "g" });
      expect((await call(b, token)).status).toBe(200);
      await revokeOnA({ jti: jtiOf(token) });
      samples.push(await untilB(token, 401, 5_000));
    }
    samples.sort((x, y) => x - y);
    console.log(`revocation propagation A→B over 20 revocations: median ${samples[10]!.toFixed(1)} ms, max ${samples[19]!.toFixed(1)} ms`);
    expect(samples[10]).toBeLessThan(PROPAGATION_MEDIAN_BOUND_MS);
    expect(samples[19]).toBeLessThan(PROPAGATION_BOUND_MS);
  });

  it("a revocation on A is answered once B has applied it: B refuses the token's very next call, every time", async () => {
    for (let i = 0; i < 20; i++) {
      const token = await tokenFor(a, agent, { grant: "g" });
      expect((await call(b, token)).status).toBe(200);
      await revokeOnA({ jti: jtiOf(token) });
      // No polling: the barrier (src/change-feed/feed.ts) waited for B's answer before A answered.
      expect((await call(b, token)).status).toBe(401);
    }
  });

  it("a token issued on A a moment ago is revoked by its jti on B, which waits for its record; an unknown jti is still refused", async () => {
    for (let i = 0; i < 10; i++) {
      const token = await tokenFor(a, agent, { grant: "g" });
      // At once: A answered the token when its record was in A's spool, before the database had it.
      const res = await b.admin("post", "/v1/revocations", { jti: jtiOf(token), reason: "just issued" });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect((await call(a, token)).status).toBe(401);
    }
    expect((await b.admin("post", "/v1/revocations", { jti: "kwt-no-such-token" })).status).toBe(404);
  });

  it(`a grant edit on A narrows live tokens on A at once and on B within ${PROPAGATION_MEDIAN_BOUND_MS} ms (median; both hold the grant in memory)`, async () => {
    const grant = await createGrant(a, { name: "g-edited", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      const token = await tokenFor(a, agent, { grant: "g-edited" });
      expect((await call(a, token)).status).toBe(200);
      expect((await call(b, token)).status).toBe(200);
      const denied = await a.admin("patch", `/v1/grants/${grant.id}`, { deny: [{ method: "GET", path: "/x" }] });
      expect(denied.status).toBe(200);
      expect((await call(a, token)).status).toBe(403);
      samples.push(await untilB(token, 403, 5_000));
      expect((await a.admin("patch", `/v1/grants/${grant.id}`, { deny: [] })).status).toBe(200);
      await untilB(token, 200, 5_000);
    }
    samples.sort((x, y) => x - y);
    console.log(`grant edit propagation A→B over 10 edits: median ${samples[5]!.toFixed(1)} ms, max ${samples[9]!.toFixed(1)} ms`);
    expect(samples[5]).toBeLessThan(PROPAGATION_MEDIAN_BOUND_MS);
    expect(samples[9]).toBeLessThan(PROPAGATION_BOUND_MS);
  });

  it(`an upstream and an environment changed on A take effect on B within ${PROPAGATION_BOUND_MS} ms`, async () => {
    await createUpstream(a, { name: "api-moved", baseUrl: upstream.url, environment: "qa", secret: "first-secret" });
    await createGrant(a, { name: "g-moved", agents: [agent.id], upstream: "api-moved", methods: ["GET"], paths: ["/**"] });
    const token = await tokenFor(a, agent, { grant: "g-moved" });
    const callMoved = (broker: TestBroker) => broker.http().get("/proxy/api-moved/x").set("authorization", `Bearer ${token}`);
    expect((await callMoved(b)).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer first-secret");

    expect((await a.admin("put", "/v1/upstreams/api-moved/secret", { secret: "second-secret" })).status).toBe(200);
    const started = performance.now();
    while (upstream.received.at(-1)!.headers.authorization !== "Bearer second-secret") {
      expect(performance.now() - started).toBeLessThan(PROPAGATION_BOUND_MS);
      expect((await callMoved(b)).status).toBe(200);
    }

    // The token was issued without approval: once its environment requires one, it is refused.
    expect((await a.admin("put", "/v1/environments/qa", { requiresApproval: true })).status).toBe(200);
    const refusedAfter = performance.now();
    for (;;) {
      const res = await callMoved(b);
      if (res.status === 403) break;
      expect(res.status).toBe(200);
      expect(performance.now() - refusedAfter).toBeLessThan(PROPAGATION_BOUND_MS);
    }
  });

  it("B fails closed when its notification connection is cut and cannot recover, and comes back when it can", async () => {
    const token = await tokenFor(a, agent, { grant: "g" });
    expect((await call(b, token)).status).toBe(200);
    // Hold the revocation table so B's reload after reconnecting cannot finish, then cut B's LISTEN connection.
    await admin.query(`BEGIN`);
    await admin.query(`LOCK TABLE "${schema}"."Revocation" IN ACCESS EXCLUSIVE MODE`);
    const cutAt = performance.now();
    await admin.query(`SELECT pg_terminate_backend($1)`, [bListenerPid]);
    try {
      await untilB(token, 503, B_MAX_STALENESS_MS + 2_000);
      const failedClosedAfter = performance.now() - cutAt;
      console.log(`B failed closed ${Math.round(failedClosedAfter)} ms after its notification connection was cut (bound ${B_MAX_STALENESS_MS} ms)`);
      expect(failedClosedAfter).toBeLessThan(B_MAX_STALENESS_MS + 500);
      const before = upstream.received.length;
      const stale = await call(b, token);
      expect(stale.status).toBe(503);
      expect(stale.body.error.code).toBe("revocation_state_stale");
      expect(upstream.received.length).toBe(before);
      expect((await b.http().get("/readyz")).status).toBe(503); // the load balancer takes B out
      expect((await call(a, token)).status).toBe(200); // A's connection was not cut
      expect((await a.http().get("/readyz")).status).toBe(200);
    } finally {
      await admin.query(`ROLLBACK`);
    }
    const recoveredAfter = await untilB(token, 200, 5_000);
    console.log(`B was current again ${Math.round(recoveredAfter)} ms after its reload could run`);
    // The load balancer's check agrees soon after: on a loaded machine one check can land in a moment the
    // state is stale again (a heartbeat later than B's 1 s staleness bound), which fails closed for that
    // moment (seen once in a full run on Node 24).
    await waitFor(async () => (await b.http().get("/readyz")).status === 200 || undefined, 2_000, "B's /readyz to say ready again");
    const pids = await listenerPids();
    expect(pids).toHaveLength(2);
    expect(pids).toContain(aListenerPid);
    expect(pids).not.toContain(bListenerPid); // B reconnected on a new connection

    // Notifications flow again on the new connection.
    await revokeOnA({ jti: jtiOf(token) });
    expect(await untilB(token, 401, PROPAGATION_BOUND_MS)).toBeLessThan(PROPAGATION_BOUND_MS);
  });

  it("a revocation made while B's notification connection is down is not lost", async () => {
    const token = await tokenFor(a, agent, { grant: "g" });
    // B serves again after the test before cut its connections (its audit shipping retries within ~0.1 s).
    await untilB(token, 200, B_MAX_STALENESS_MS + 2_000);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`keyward-listener:${schema}`]);
    await revokeOnA({ jti: jtiOf(token), reason: "while B was deaf" });
    await untilB(token, 401, B_MAX_STALENESS_MS + 2_000);
    const a2 = await tokenFor(a, agent, { grant: "g" });
    await untilB(a2, 200, B_MAX_STALENESS_MS + 2_000); // and B is current again
  });

  it("revocations survive restarting both replicas", async () => {
    const token = await tokenFor(a, agent, { grant: "g" });
    await revokeOnA({ agentId: agent.id, reason: "restart test" });
    await sleep(1100); // agent revocations cut off at whole seconds: this token is issued after
    const later = await tokenFor(a, agent, { grant: "g" });
    await a.close();
    await b.close();
    a = await startBroker(store);
    b = await startB();
    for (const broker of [a, b]) {
      expect((await call(broker, token)).status).toBe(401);
      expect((await call(broker, later)).status).toBe(200);
    }
  });
});
