import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/database.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startBrokerProcessAfter, type BrokerProcess } from "../helpers/broker-process.js";
import { freePort } from "../helpers/pg-cluster.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "../security/cases.js";

type Outcome = { status: number; code?: string };

/**
 * Calls allowed under a budget that are then not forwarded: the units they took are given back, so that
 * a budget buys as many calls upstream as it says. The faults are real: a broker process whose files may
 * not grow past a size (RLIMIT_FSIZE, as a full disk: its audit spool's writes fail with EFBIG now and then).
 */
describe("faults: budget units of an allowed call that was not forwarded", () => {
  let store: Store;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let broker: BrokerProcess | undefined;
  let made: { small: { id: string; token: string }; large: { id: string; token: string } };

  beforeAll(async () => {
    store = newStore();
    upstream = await startUpstream();
    ({ broker, made } = await startBrokerProcessAfter(store, async (setup) => {
      await createUpstream(setup, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "sk-budget-not-forwarded" });
      const agent = await createAgent(setup, "agent");
      const grantOf = async (name: string, maxCalls: number) => {
        const grant = await createGrant(setup, { name, agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"], budgets: { perGrant: { maxCalls } } });
        return { id: grant.id, token: await tokenFor(setup, agent, { grant: name }) };
      };
      // 90 is taken call by call from the database; 1,600 leases units to the replica (src/budgets/budgets.ts).
      return { small: await grantOf("small", 90), large: await grantOf("large", 1600) };
    }));
  });
  afterAll(async () => {
    await broker?.kill();
    await upstream?.close();
    await store?.drop();
  });

  const call = async (token: string, path: string): Promise<Outcome> => {
    const res = await fetch(`${broker!.url}/proxy/api${path}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { error?: { code?: string } };
    return { status: res.status, code: body.error?.code };
  };
  // Paths of random lengths make events of random sizes: which event meets the full disk varies, the
  // allow event (503, nothing forwarded) or the outcome's (kept in memory, the call answered).
  const somePath = (prefix: string) => `${prefix}/${"p".repeat(Math.floor(Math.random() * 400))}`;
  const forwarded = (prefix: string) => upstream.received.filter((r) => r.url.startsWith(prefix)).length;
  const usedOf = async (grantId: string) => {
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      return (await db.prisma.budgetCounter.findUnique({ where: { key: `grant:${grantId}:calls` } }))?.used ?? 0;
    } finally {
      await db.close();
    }
  };

  it(`${title("FLT-47")}: its audit write refused by a full disk`, { timeout: 90_000 }, async () => {
    // From now on the broker's files stop at 8 KiB: the spool's segment fills, a write fails, the spool
    // begins a new segment, which fills in turn. Every few calls, one event cannot be made durable.
    execFileSync("prlimit", ["--pid", String(broker!.pid), "--fsize=8192:8192"]);

    // Taken from the database call by call: spent to the end, every unit reached the upstream.
    const small: Outcome[] = [];
    while (!small.some((o) => o.status === 429) && small.length < 400) small.push(await call(made.small.token, somePath("/small")));
    const refusedUnaudited = small.filter((o) => o.status === statusOf("FLT-47"));
    expect(refusedUnaudited.length).toBeGreaterThan(0);
    for (const o of refusedUnaudited) expect(o.code).toBe("audit_unavailable");
    expect(new Set(small.map((o) => o.status))).toEqual(new Set([200, 503, 429]));
    expect(forwarded("/small")).toBe(90);
    expect(await usedOf(made.small.id)).toBe(90);

    // Spent from this replica's lease: once the broker stops and returns what it holds, the counter says
    // as many calls as reached the upstream.
    const large: Outcome[] = [];
    for (let i = 0; i < 200; i++) large.push(await call(made.large.token, somePath("/large")));
    expect(large.filter((o) => o.status === 503).length).toBeGreaterThan(0);
    await broker!.stop();
    broker = undefined;
    expect(await usedOf(made.large.id)).toBe(forwarded("/large"));
  });
});

describe("faults: budget units of an allowed call whose upstream cannot be connected to", () => {
  let store: Store;
  let broker: TestBroker;
  let grantId: string;
  let token: string;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    // A port nothing listens on: every connection is refused before a byte of the request is written.
    await createUpstream(broker, { name: "down", baseUrl: `http://127.0.0.1:${await freePort()}`, environment: "staging", secret: "sk-budget-unreached" });
    const agent = await createAgent(broker, "agent");
    grantId = (await createGrant(broker, { name: "g", agents: [agent.id], upstream: "down", methods: ["GET"], paths: ["/**"], budgets: { perGrant: { maxCalls: 3 } } })).id;
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  it(title("FLT-48"), async () => {
    for (let i = 0; i < 6; i++) {
      const res = await broker.http().get("/proxy/down/v1/items").set("authorization", `Bearer ${token}`);
      expect(res.status).toBe(statusOf("FLT-48"));
      expect(res.body.error.code).toBe("upstream_unreachable");
    }
    expect((await broker.keyward.db.prisma.budgetCounter.findUnique({ where: { key: `grant:${grantId}:calls` } }))?.used ?? 0).toBe(0);
  });
});

describe("faults: budget units of an allowed call whose client left before it was sent", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let tokenEndpoint: Server;
  let grantId: string;
  let token: string;
  let noCredential: { grantId: string; token: string };

  beforeAll(async () => {
    // The upstream's OAuth token endpoint answers after 600 ms: the broker holds the call that long after
    // its budget was taken and its allow event written, before sending it.
    tokenEndpoint = createServer((_req, res) =>
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ access_token: "at-budget-client-gone", token_type: "Bearer", expires_in: 3600 }));
      }, 600),
    );
    await new Promise<void>((resolve) => tokenEndpoint.listen(0, "127.0.0.1", resolve));
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, {
      name: "slow-credential",
      baseUrl: upstream.url,
      environment: "staging",
      secret: "cs-budget-client-gone",
      auth: { type: "oauth2-client-credentials", tokenUrl: `http://127.0.0.1:${(tokenEndpoint.address() as AddressInfo).port}/token`, clientId: "client" },
    });
    // And one whose token endpoint refuses every connection: no call can get its credential.
    await createUpstream(broker, {
      name: "no-credential",
      baseUrl: upstream.url,
      environment: "staging",
      secret: "cs-budget-no-credential",
      auth: { type: "oauth2-client-credentials", tokenUrl: `http://127.0.0.1:${await freePort()}/token`, clientId: "client" },
    });
    const agent = await createAgent(broker, "agent");
    grantId = (await createGrant(broker, { name: "g", agents: [agent.id], upstream: "slow-credential", methods: ["GET"], paths: ["/**"], budgets: { perGrant: { maxCalls: 3 } } })).id;
    token = await tokenFor(broker, agent, { grant: "g" });
    const failing = await createGrant(broker, { name: "f", agents: [agent.id], upstream: "no-credential", methods: ["GET"], paths: ["/**"], budgets: { perGrant: { maxCalls: 2 } } });
    noCredential = { grantId: failing.id, token: await tokenFor(broker, agent, { grant: "f" }) };
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await new Promise((resolve) => tokenEndpoint?.close(resolve));
    await store?.drop();
  });

  it(`${title("FLT-47")}: its upstream credential cannot be obtained`, async () => {
    for (let i = 0; i < 4; i++) {
      const res = await broker.http().get("/proxy/no-credential/v1/items").set("authorization", `Bearer ${noCredential.token}`);
      expect(res.status).toBe(502);
      expect(res.body.error.code).toBe("upstream_credential_unavailable");
    }
    expect((await broker.keyward.db.prisma.budgetCounter.findUnique({ where: { key: `grant:${noCredential.grantId}:calls` } }))?.used ?? 0).toBe(0);
  });

  it(title("FLT-49"), async () => {
    const gone = fetch(`${broker.url}/proxy/slow-credential/v1/items`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(150) });
    await expect(gone).rejects.toThrow();
    // The credential arrives; the call is not sent to a client that is gone, and its unit is given back.
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(upstream.received).toHaveLength(0);
    const used = async () => (await broker.keyward.db.prisma.budgetCounter.findUnique({ where: { key: `grant:${grantId}:calls` } }))?.used ?? 0;
    expect(await used()).toBe(0);
    const event = await broker.keyward.db.prisma.auditEvent.findFirst({ where: { kind: "proxy.response", grantId }, select: { reason: true } });
    expect(event?.reason).toBe("request_aborted");
    // The budget buys its three calls.
    for (let i = 0; i < 3; i++) expect((await broker.http().get("/proxy/slow-credential/v1/items").set("authorization", `Bearer ${token}`)).status).toBe(200);
    expect((await broker.http().get("/proxy/slow-credential/v1/items").set("authorization", `Bearer ${token}`)).status).toBe(statusOf("FLT-49"));
  });
});
