import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startTempCluster, type TempCluster } from "../helpers/pg-cluster.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { waitFor } from "../helpers/wait.js";

/** The server's limit, and how many of its connections other clients leave free (the brokers' included). */
const MAX_CONNECTIONS = 40;
const FREE_BEFORE_THE_CUT = 4;
/**
 * Other clients take what the brokers had while it is cut: the two brokers come back to twelve
 * connections, six each: their notification connections, their audit shipping and what their light load
 * uses. (With eight, one broker starved in 2 of 4 runs: fairness between replicas on a full server is not
 * guaranteed, docs/operations.md.)
 */
const FREE_FOR_THE_BROKERS_AFTER = 12;
/** How long the database is cut: longer than the revocation staleness bound (5 s by default). */
const CUT_MS = 6_000;
/** Issue 16's target: serving again this soon after the database takes connections. */
const RECOVERY_TARGET_MS = 2_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A TCP proxy in front of PostgreSQL that the test can cut: every connection through it is dropped at
 * once, and new ones are closed as they arrive (or, hanging, accepted and never answered), until it is
 * restored. The database itself keeps running (and keeps the test's own clients), as when a network path
 * or a load balancer in front of it fails.
 */
async function startCuttableProxy(
  targetPort: number,
): Promise<{ port: number; cut(how?: "close" | "hang"): void; restore(): void; close(): Promise<void> }> {
  let cut: "close" | "hang" | null = null;
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (cut === "close") return void client.destroy();
    if (cut === "hang") {
      open.add(client);
      client.on("error", () => {});
      client.on("close", () => open.delete(client));
      return;
    }
    const backend = connect(targetPort, "127.0.0.1");
    for (const socket of [client, backend]) {
      open.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        open.delete(socket);
        client.destroy();
        backend.destroy();
      });
    }
    client.pipe(backend);
    backend.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut(how = "close") {
      cut = how;
      for (const socket of open) socket.destroy();
    },
    restore() {
      cut = null;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** What a client got back for one proxied call. */
type Call = { broker: number; at: number; status: number; code?: string; requestId?: string };
/** `/readyz` just before and just after one proxied call. */
type Probe = { broker: number; at: number; readyBefore: boolean; call: Call; readyAfter: boolean };

/**
 * Issue 16, recovery after the database comes back: two replicas on a PostgreSQL of the test's own with
 * a small max_connections, nearly all of it taken by other clients, the path to it cut for longer than
 * the staleness bound under light load, then restored.
 */
describe("faults: recovery when the database comes back near max_connections", () => {
  let cluster: TempCluster;
  let proxy: Awaited<ReturnType<typeof startCuttableProxy>>;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let admin: pg.Client;
  const others: pg.Client[] = [];
  const brokers: TestBroker[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-recovery-"));
  const calls: Call[] = [];
  const probes: Probe[] = [];
  let tokens: string[] = [];

  beforeAll(async () => {
    cluster = await startTempCluster({ maxConnections: MAX_CONNECTIONS });
    proxy = await startCuttableProxy(cluster.port);
    upstream = await startUpstream();
    admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    const store: Store = {
      dataDir,
      databaseUrl: `postgresql://postgres@127.0.0.1:${proxy.port}/postgres?schema=keyward`,
      masterKey: randomBytes(32).toString("base64"),
      drop: async () => {},
    };
    for (let i = 0; i < 2; i++) brokers.push(await startBroker(store));
    const [first] = brokers as [TestBroker];
    await createUpstream(first, { name: "api", baseUrl: upstream.url, environment: "staging", secret: `sk-recovery-${randomBytes(8).toString("hex")}` });
    const agent = await createAgent(first, "agent");
    await createGrant(first, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    tokens = await Promise.all(brokers.map((b) => tokenFor(b, agent, { grant: "g" })));
  });

  afterAll(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    await Promise.all(others.map((c) => c.end().catch(() => {})));
    await admin?.end().catch(() => {});
    await proxy?.close();
    await upstream?.close();
    await cluster?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const call = async (broker: number): Promise<Call> => {
    const at = Date.now();
    try {
      const res = await fetch(`${brokers[broker]!.url}/proxy/api/v1/items`, { headers: { authorization: `Bearer ${tokens[broker]}` } });
      const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
      return { broker, at, status: res.status, code: body?.error?.code, requestId: res.headers.get("x-request-id") ?? undefined };
    } catch {
      return { broker, at, status: 0 };
    }
  };
  const ready = (broker: number) => fetch(`${brokers[broker]!.url}/readyz`).then((r) => r.status === 200, () => false);

  /** Light load (two clients per broker, back to back) and, per broker, /readyz polled around a call. */
  const startTraffic = () => {
    let running = true;
    const clients = brokers.flatMap((_, broker) =>
      Array.from({ length: 2 }, async () => {
        while (running) calls.push(await call(broker));
      }),
    );
    const probers = brokers.map(async (_, broker) => {
      while (running) {
        const readyBefore = await ready(broker);
        const probed = await call(broker);
        const readyAfter = await ready(broker);
        probes.push({ broker, at: probed.at, readyBefore, call: probed, readyAfter });
        await sleep(25);
      }
    });
    return {
      async stop() {
        running = false;
        await Promise.all([...clients, ...probers]);
      },
    };
  };

  const clientConnections = async () =>
    Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'`)).rows[0]!.n);

  /** Opens idle connections of other clients, straight to the server, until it has `total`. */
  const fillUpTo = async (total: number) => {
    for (let missing = total - (await clientConnections()); missing > 0; missing--) {
      const other = new pg.Client({ connectionString: cluster.url });
      await other.connect();
      others.push(other);
    }
  };

  it("serves again within 2 s of the database taking connections; /readyz agrees with the calls; the audit records what was sent", { timeout: 120_000 }, async () => {
    const traffic = startTraffic();
    const allCalls = () => [...calls, ...probes.map((p) => p.call)];
    const succeededSince = (broker: number, since: number) => allCalls().filter((c) => c.broker === broker && c.at >= since && c.status === 200).length;
    await waitFor(() => brokers.every((_, b) => succeededSince(b, 0) >= 20), 20_000, "calls before the cut");

    // Other clients take the server to a few connections short of its limit, the brokers' included.
    await fillUpTo(MAX_CONNECTIONS - FREE_BEFORE_THE_CUT);
    const filledAt = Date.now();
    await waitFor(() => brokers.every((_, b) => succeededSince(b, filledAt) >= 20), 20_000, "calls with the server nearly full");

    proxy.cut();
    const cutAt = Date.now();
    await waitFor(async () => (await clientConnections()) === others.length + 1, 5_000, "the brokers' connections gone");
    await fillUpTo(MAX_CONNECTIONS - FREE_FOR_THE_BROKERS_AFTER);
    await sleep(CUT_MS - (Date.now() - cutAt));
    proxy.restore();
    const restoredAt = Date.now();
    // (Not thrown: what each broker answered after the restore is printed first, to show why.)
    await waitFor(() => brokers.every((_, b) => succeededSince(b, restoredAt) >= 1), 15_000, "a call served after the restore").catch(() => {});
    for (const [b] of brokers.entries()) {
      const changes: string[] = [];
      for (const c of allCalls().filter((c) => c.broker === b && c.at >= restoredAt).sort((x, y) => x.at - y.at)) {
        const answer = `${c.status} ${c.code ?? ""}`.trim();
        if (!changes.at(-1)?.endsWith(answer)) changes.push(`+${c.at - restoredAt} ms ${answer}`);
      }
      console.log(`broker ${b} after the restore: ${changes.slice(0, 10).join(", ")}`);
    }
    const recoveredAt = brokers.map((_, b) => Math.min(...allCalls().filter((c) => c.broker === b && c.at >= restoredAt && c.status === 200).map((c) => c.at)));
    await sleep(3_000);
    await traffic.stop();
    const stoppedAt = Date.now();

    const recoveryMs = recoveredAt.map((t) => t - restoredAt);
    // A broker that did not recover says why: what it logged about its connections.
    for (const [b, broker] of brokers.entries()) {
      if (recoveryMs[b]! >= RECOVERY_TARGET_MS) console.log(`broker ${b}'s log:\n${broker.logs.filter((l) => /change|audit|database|clients/i.test(l)).slice(-30).map((l) => l.slice(0, 400)).join("\n")}`);
    }
    console.log(`recovery after a ${CUT_MS} ms cut, ${others.length} other clients on a server of ${MAX_CONNECTIONS}: ${recoveryMs.map((ms) => `${ms} ms`).join(", ")}`);
    for (const ms of recoveryMs) expect(ms).toBeLessThan(RECOVERY_TARGET_MS);

    // The pool is bounded and waits for room on a full server: no storm of refused connections.
    const tooMany = brokers.map((b) => b.logs.filter((line) => line.includes("too many clients")).length);
    console.log(`"too many clients" in the brokers' logs: ${tooMany.join(", ")}`);
    for (const n of tooMany) expect(n).toBeLessThanOrEqual(5);

    // While cut, nothing is served (a call that started just before the cut may still finish); once
    // recovered, everything is, and nothing else than 200 and 503 is ever answered.
    const during = allCalls().filter((c) => c.at >= cutAt + 500 && c.at < restoredAt);
    expect(during.length).toBeGreaterThan(20);
    expect(during.filter((c) => c.status !== 503)).toEqual([]);
    const afterRecovery = allCalls().filter((c) => c.at >= Math.max(...recoveredAt) + 100 && c.at < stoppedAt);
    expect(afterRecovery.length).toBeGreaterThan(20);
    expect(afterRecovery.filter((c) => c.status !== 200)).toEqual([]);
    expect(allCalls().filter((c) => c.status !== 200 && c.status !== 503)).toEqual([]);

    // /readyz is false exactly while calls are refused: whenever it said the same before and after a
    // call, the call agrees with it.
    const settled = probes.filter((p) => p.readyBefore === p.readyAfter);
    expect(settled.filter((p) => p.readyBefore).length).toBeGreaterThan(20);
    expect(settled.filter((p) => !p.readyBefore).length).toBeGreaterThan(5);
    expect(settled.filter((p) => p.readyBefore !== (p.call.status === 200)).map((p) => ({ ...p, at: p.at - cutAt }))).toEqual([]);


    // The outcome recorded is the outcome the client got: every answered call's last event (its
    // proxy.response, or its deny) carries the status the client saw.
    await waitFor(() => brokers.every((b) => b.keyward.auditBacklog() === 0), 15_000, "kept audit events written");
    const answered = allCalls().filter((c) => c.status !== 0 && c.requestId);
    const rows = await brokers[0]!.keyward.db.prisma.auditEvent.findMany({
      where: { requestId: { in: answered.map((c) => c.requestId!) }, kind: { in: ["proxy", "proxy.response"] } },
      select: { requestId: true, kind: true, decision: true, status: true },
    });
    const byCall = new Map<string, typeof rows>();
    for (const row of rows) byCall.set(row.requestId!, [...(byCall.get(row.requestId!) ?? []), row]);
    const disagreeing = answered.flatMap((c) => {
      const events = byCall.get(c.requestId!) ?? [];
      const last = events.find((e) => e.kind === "proxy.response") ?? events.find((e) => e.kind === "proxy" && e.decision === "deny");
      return last?.status === c.status ? [] : [{ client: c.status, code: c.code, at: c.at - cutAt, recorded: events }];
    });
    console.log(`audit: ${answered.length} answered calls (${answered.filter((c) => c.status === 503).length} of them 503), ${disagreeing.length} recorded otherwise`);
    expect(answered.filter((c) => c.status === 503).length).toBeGreaterThan(20);
    expect(disagreeing).toEqual([]);
  });

  it("a database that takes connections and never answers: 503 database_unavailable once the pool gives up, never a 500", { timeout: 60_000 }, async () => {
    proxy.cut("hang");
    try {
      const [broker] = brokers as [TestBroker];
      const started = Date.now();
      const answers = await Promise.all(["/v1/agents", "/v1/grants"].map((path) => broker.admin("get", path)));
      for (const res of answers) expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status: 503, code: "database_unavailable" });
      // The pool's connect timeout (5 s), not a hang: the client is answered.
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      proxy.restore();
    }
    await waitFor(async () => (await brokers[0]!.admin("get", "/v1/agents")).status === 200, 15_000, "the database answering again");
  });
});
