import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { deriveCheckpointKey } from "../../src/audit/chain.js";
import { verifyAuditChain } from "../../src/audit/verify.js";
import { openDatabase } from "../../src/db/database.js";
import { startBroker, TEST_ADMIN_KEY, type Store, type TestBroker } from "../helpers/broker.js";
import { startBrokerProcess } from "../helpers/broker-process.js";
import { startTempCluster, type TempCluster } from "../helpers/pg-cluster.js";
import { basic, createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";

type Outcome = { status: number; requestId: string | null; code?: string };

/**
 * Issue 14, exactly once: every call whose 2xx the client received has its allow (`proxy`) and outcome
 * (`proxy.response`) events, none twice, whatever happened to the broker or its database connection; a
 * call that ran upstream is answered with the upstream's answer even when its outcome cannot be written
 * yet. On a throwaway cluster of the test's own, whose connections it may cut and which it may stop.
 */
describe("faults: audit events exactly once", () => {
  let cluster: TempCluster;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const dirs: string[] = [];
  let release = () => {};

  beforeAll(async () => {
    cluster = await startTempCluster();
    upstream = await startUpstream((req, res) => {
      const reply = () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ran: true, url: req.url }));
      };
      // The slow call waits until the test has stopped the database.
      if (req.url?.startsWith("/slow")) release = reply;
      else reply();
    });
  });
  afterAll(async () => {
    await upstream?.close();
    await cluster?.destroy();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const storeOn = (schema: string): Store => {
    const dataDir = mkdtempSync(join(tmpdir(), "keyward-once-"));
    dirs.push(dataDir);
    return { dataDir, databaseUrl: `${cluster.url}?schema=${schema}`, masterKey: randomBytes(32).toString("base64"), drop: async () => {} };
  };

  /** Every answered call has one allow and one outcome event; nothing is recorded twice; the chain verifies. */
  const expectExactlyOnce = async (store: Store, answered: string[]) => {
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      const rows = await db.prisma.auditEvent.findMany({
        where: { requestId: { in: answered }, kind: { in: ["proxy", "proxy.response"] } },
        select: { requestId: true, kind: true, decision: true, status: true },
      });
      const byCall = new Map<string, string[]>();
      for (const r of rows) byCall.set(r.requestId!, [...(byCall.get(r.requestId!) ?? []), `${r.kind}:${r.decision}:${r.status ?? ""}`]);
      for (const id of answered) expect(byCall.get(id)?.sort(), id).toEqual(["proxy.response:allow:200", "proxy:allow:"]);
      const verified = await verifyAuditChain(db.prisma, [deriveCheckpointKey(Buffer.from(store.masterKey, "base64"))]);
      expect(verified).toMatchObject({ ok: true, firstBroken: null, duplicates: 0 });
      expect(await db.prisma.auditSetAside.count()).toBe(0);
    } finally {
      await db.close();
    }
  };

  /** Clients calling `call` back to back until stopped. */
  const load = (call: () => Promise<Outcome | null>, clients = 4) => {
    const outcomes: Outcome[] = [];
    let running = true;
    const workers = Array.from({ length: clients }, async () => {
      while (running) {
        const o = await call();
        if (o) outcomes.push(o);
      }
    });
    return {
      outcomes,
      answered: () => outcomes.filter((o) => o.status >= 200 && o.status < 300).map((o) => o.requestId!),
      async stop() {
        running = false;
        await Promise.all(workers);
      },
    };
  };

  it("the broker SIGKILLed under load: every answered call has its allow and outcome events, once", { timeout: 120_000 }, async () => {
    const store = storeOn("kw_killed");
    let broker = await startBrokerProcess(store);
    const admin = (path: string, body: unknown) =>
      fetch(broker.url + path, { method: "POST", headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    expect((await admin("/v1/upstreams", { name: "api", baseUrl: upstream.url, environment: "staging", auth: { type: "header" }, secret: "once-secret" })).status).toBe(201);
    const agent = (await (await admin("/v1/agents", { name: "agent" })).json()) as { id: string; clientId: string; clientSecret: string };
    expect((await admin("/v1/grants", { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] })).status).toBe(201);
    const issued = await fetch(`${broker.url}/v1/tokens`, {
      method: "POST",
      headers: { authorization: basic(agent.clientId, agent.clientSecret), "content-type": "application/json" },
      body: JSON.stringify({ grant: "g" }),
    });
    const token = ((await issued.json()) as { access_token: string }).access_token;

    const calls = load(async () => {
      const res = await fetch(`${broker.url}/proxy/api/v1/items`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null);
      if (!res) return null;
      // A body cut by the kill is no answer: the client never got the whole response.
      const complete = await res.arrayBuffer().then(() => true, () => false);
      return complete ? { status: res.status, requestId: res.headers.get("x-request-id") } : null;
    });
    await waitFor(() => calls.answered().length >= 40, 60_000, "answered calls before the kill");
    await broker.kill();
    await calls.stop();
    expect(new Set(calls.outcomes.map((o) => o.status))).toEqual(new Set([200]));

    // It starts again on the same data dir: what its spool held and the database had not yet got is
    // shipped (src/audit/spool.ts), what it had is not written twice, and the chain still verifies.
    broker = await startBrokerProcess(store);
    await vi.waitFor(() => expectExactlyOnce(store, calls.answered()), { timeout: 20_000, interval: 250 });
    await broker.stop();
    await expectExactlyOnce(store, calls.answered());
  });

  describe("in one broker", () => {
    let store: Store;
    let broker: TestBroker;
    let token: string;

    beforeAll(async () => {
      store = storeOn("kw_cut");
      broker = await startBroker(store, { LOG_LEVEL: "warn", KEYWARD_REVOCATION_RESYNC_MS: "200" });
      await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "once-secret" });
      const agent = await createAgent(broker, "agent");
      await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
      token = await tokenFor(broker, agent, { grant: "g" });
    });
    afterAll(async () => {
      await broker?.close();
    });

    const call = async (path = "/v1/items"): Promise<Outcome> => {
      const res = await broker.http().get(`/proxy/api${path}`).set("authorization", `Bearer ${token}`);
      return { status: res.status, requestId: res.headers["x-request-id"] as string, code: res.body?.error?.code };
    };

    it("its database connections cut again and again mid-commit: no duplicates, none lost, it recovers by itself", { timeout: 90_000 }, async () => {
      const killer = new pg.Client({ connectionString: cluster.url });
      await killer.connect();
      const calls = load(call);
      try {
        await waitFor(() => calls.answered().length >= 10, 20_000, "calls before the cuts");
        // Every client connection of the cluster but the killer's own, cut every 50-150 ms for 3 s.
        for (const end = Date.now() + 3_000; Date.now() < end; ) {
          await killer.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`);
          await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
        }
        const cutsOver = calls.outcomes.length;
        // Recovered by itself: 20 answered calls in a row.
        await waitFor(() => {
          const since = calls.outcomes.slice(cutsOver);
          const lastFailure = since.map((o) => o.status).lastIndexOf(503);
          return since.slice(lastFailure + 1).filter((o) => o.status === 200).length >= 20;
        }, 30_000, "recovery");
      } finally {
        await calls.stop();
        await killer.end();
      }
      // Only answers and documented refusals (database or audit log unavailable), never a 500.
      const statuses = new Set(calls.outcomes.map((o) => o.status));
      for (const s of statuses) expect([200, 503]).toContain(s);
      for (const o of calls.outcomes.filter((o) => o.status === 503)) expect(["audit_unavailable", "database_unavailable"]).toContain(o.code);
      // Outcomes kept in memory during the cuts are written once the connection is back.
      await vi.waitFor(() => expectExactlyOnce(store, calls.answered()), { timeout: 20_000, interval: 500 });
    });

    it("an upstream call that completes while the database is down is answered with the upstream's answer; its outcome is written once it is back", { timeout: 60_000 }, async () => {
      const slow = call("/slow");
      await waitFor(() => upstream.received.some((r) => r.url === "/slow"), 10_000, "the slow call to reach the upstream");
      cluster.stop("immediate");
      try {
        release();
        const answered = await slow;
        // It ran upstream: the agent gets that answer, not a 503 it would retry.
        expect(answered.status).toBe(200);
        // Shipping its outcome finds the database gone (after the shipper's few milliseconds of linger,
        // src/audit/log.ts), and from then on new calls are refused (never forwarded).
        await waitFor(async () => (await broker.http().get("/readyz")).status === 503, 1_000, "the broker to notice the database is gone");
        const forwarded = upstream.received.length;
        expect((await call()).status).toBe(503);
        expect(upstream.received.length).toBe(forwarded);
        cluster.start();
        await vi.waitFor(() => expectExactlyOnce(store, [answered.requestId!]), { timeout: 30_000, interval: 500 });
      } finally {
        try {
          cluster.start();
        } catch {
          // already started
        }
      }
      await waitFor(async () => (await call()).status === 200, 20_000, "recovery");
    });
  });
});
