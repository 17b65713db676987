import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, TEST_ADMIN_KEY, type Store } from "../helpers/broker.js";
import { spawnMain } from "../helpers/broker-process.js";
import { freePort } from "../helpers/pg-cluster.js";
import { startUpstream } from "../helpers/upstream.js";
import { openDatabase } from "../../src/db/database.js";
import { title } from "../security/cases.js";
import { masterKeyForms, signingPrivateParts, sweepForSecrets } from "../security/harness.js";
import { waitFor } from "../helpers/wait.js";


type Broker = { child: ChildProcess; exited: Promise<number | null>; output: () => string };

/**
 * The real entry point, started as `npm start` runs it (test/helpers/broker-process.ts, spawnMain).
 */
describe("faults: the broker process killed and stopped", () => {
  let store: Store;
  let port: number;
  let url: string;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let broker: Broker | undefined;
  const upstreamSecret = `sk-process-${randomBytes(12).toString("hex")}`;
  /** For the secret sweep (SEC-01): what every broker process wrote, what the clients got back, what they held. */
  const outputs: (() => string)[] = [];
  const responses: string[] = [];
  const credentials: Record<string, string> = {};

  beforeAll(async () => {
    store = newStore();
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    upstream = await startUpstream((req, res) => {
      const reply = () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true, url: req.url }));
      };
      if (req.url?.startsWith("/slow")) setTimeout(reply, 1500);
      else reply();
    });
  });

  afterAll(async () => {
    if (broker?.child.exitCode === null && broker.child.signalCode === null) process.kill(-broker.child.pid!, "SIGKILL");
    await broker?.exited;
    await upstream?.close();
    await store?.drop();
  });

  const start = async (): Promise<Broker> => {
    const child = spawnMain(
      {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "/tmp",
        PORT: String(port),
        KEYWARD_DATA_DIR: store.dataDir,
        KEYWARD_MASTER_KEY: store.masterKey,
        KEYWARD_ADMIN_KEY: TEST_ADMIN_KEY,
        LOG_LEVEL: "warn",
        ...(store.databaseUrl && { DATABASE_URL: store.databaseUrl }),
      },
      ["ignore", "pipe", "pipe"],
    );
    let out = "";
    child.stdout!.on("data", (c) => (out += c));
    child.stderr!.on("data", (c) => (out += c));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`broker exited at start: ${out}`);
        return (await fetch(`${url}/healthz`).catch(() => null))?.ok;
      },
      60_000,
      "the broker to start",
    );
    outputs.push(() => out);
    return { child, exited, output: () => out };
  };

  /** fetch, with the response (headers and body) kept for the sweep. */
  const recorded = async (input: string, init?: RequestInit): Promise<Response> => {
    const res = await fetch(input, init);
    responses.push(JSON.stringify(Object.fromEntries(res.headers)) + "\n" + (await res.clone().text()));
    return res;
  };
  const admin = (method: string, path: string, body?: unknown) =>
    recorded(url + path, {
      method,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const proxy = (token: string, path = "/v1/items") => recorded(`${url}/proxy/api${path}`, { headers: { authorization: `Bearer ${token}` } });

  let basicAuth: string;
  const issue = async (): Promise<{ access_token: string; jti: string } | null> => {
    const res = await recorded(`${url}/v1/tokens`, {
      method: "POST",
      headers: { authorization: basicAuth, "content-type": "application/json" },
      body: JSON.stringify({ grant: "g" }),
    }).catch(() => null);
    return res?.status === 200 ? ((await res.json()) as { access_token: string; jti: string }) : null;
  };

  /** What the clients were told before the kill: only these may be relied on afterwards. */
  const acknowledged = { issued: [] as { access_token: string; jti: string }[], revoked: [] as { access_token: string; jti: string }[] };
  /** Tokens whose revocation was asked for, answered or not: one in flight at the kill may have been committed. */
  const revocationAsked = new Set<string>();

  it(title("FLT-13"), { timeout: 150_000 }, async () => {
    broker = await start();
    expect((await admin("POST", "/v1/upstreams", { name: "api", baseUrl: upstream.url, environment: "staging", auth: { type: "header" }, secret: upstreamSecret })).status).toBe(201);
    const agent = (await (await admin("POST", "/v1/agents", { name: "agent" })).json()) as { id: string; clientId: string; clientSecret: string };
    expect((await admin("POST", "/v1/grants", { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] })).status).toBe(201);
    basicAuth = "Basic " + Buffer.from(`${agent.clientId}:${agent.clientSecret}`).toString("base64");
    credentials["the client secret"] = agent.clientSecret;

    // Load: issue tokens, use them, revoke every other one; all of it still in flight at the kill.
    let running = true;
    const workers = Array.from({ length: 3 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const token = await issue();
        if (!token) continue;
        acknowledged.issued.push(token);
        await proxy(token.access_token).catch(() => null);
        if ((i + w) % 2 === 0) {
          revocationAsked.add(token.jti);
          const res = await admin("POST", "/v1/revocations", { jti: token.jti, reason: "load" }).catch(() => null);
          if (res?.status === 201) acknowledged.revoked.push(token);
        }
      }
    });
    await waitFor(() => acknowledged.issued.length >= 8 && acknowledged.revoked.length >= 3, 60_000, "load to build up");
    process.kill(-broker.child.pid!, "SIGKILL");
    expect(await broker.exited).toBe(-1);
    running = false;
    await Promise.all(workers);

    // Restarted on the same data: it must come up (no corrupt or half-migrated state)...
    broker = await start();
    const revoked = new Set(acknowledged.revoked.map((t) => t.jti));
    // ...every acknowledged revocation is still there and enforced...
    const stored = ((await (await admin("GET", "/v1/revocations")).json()) as { revocations: { value: string }[] }).revocations;
    for (const jti of revoked) expect(stored.map((r) => r.value)).toContain(jti);
    for (const token of acknowledged.revoked) {
      const res = await proxy(token.access_token);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("token_revoked");
    }
    // ...and every acknowledged token whose revocation was never asked for still works (its signing key
    // survived). One whose revocation was in flight at the kill is either: the commit may have preceded it.
    for (const token of acknowledged.issued.filter((t) => !revocationAsked.has(t.jti))) expect((await proxy(token.access_token)).status).toBe(200);
    for (const token of acknowledged.issued.filter((t) => revocationAsked.has(t.jti) && !revoked.has(t.jti))) {
      const res = await proxy(token.access_token);
      if (res.status !== 200) expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([401, "token_revoked"]);
    }

    // No half-written records: issuance and its audit event, revocation and its audit event, are one
    // transaction each, so either both exist or neither does.
    const events = async (kind: string) =>
      ((await (await admin("GET", `/v1/audit?kind=${kind}&limit=500`)).json()) as { events: { jti: string | null; requestId: string | null }[] }).events;
    const issuedEvents = await events("token.issued");
    for (const token of acknowledged.issued) expect(issuedEvents.map((e) => e.jti)).toContain(token.jti);
    const revokedEvents = await events("revocation.created");
    for (const jti of revoked) expect(revokedEvents.map((e) => e.jti)).toContain(jti);
    // Every audited issuance has its token record: revoking by jti needs it (404 otherwise).
    for (const event of issuedEvents.filter((e) => !revoked.has(e.jti!))) {
      expect((await admin("POST", "/v1/revocations", { jti: event.jti })).status, event.jti!).toBe(201);
    }
    // Every answered proxy call has its decision on record before its response.
    const decisions = new Set((await events("proxy")).map((e) => e.requestId));
    for (const response of await events("proxy.response")) expect(decisions).toContain(response.requestId);
  });

  it(title("FLT-14"), { timeout: 60_000 }, async () => {
    expect(broker?.child.exitCode, "FLT-13 leaves a broker running").toBeNull();
    const token = await waitFor(issue, 10_000, "a token");
    credentials["the last token"] = token.access_token;
    const inFlight = proxy(token.access_token, "/slow");
    await waitFor(() => upstream.received.some((r) => r.url === "/slow"), 10_000, "the slow call to reach the upstream");
    broker!.child.kill("SIGTERM");
    // New connections are refused while the in-flight call is still running...
    let finished = false;
    void inFlight.then(() => (finished = true));
    const refused = async () => (await fetch(`${url}/healthz`).then((r) => r.status === 503, () => true));
    await waitFor(refused, 5_000, "new requests to be refused");
    expect(finished).toBe(false);
    // ...which then completes normally, and the process exits cleanly.
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, url: "/slow" });
    expect(await broker!.exited).toBe(0);
  });

  it(title("SEC-01"), async () => {
    // Both broker processes have exited: their database is read directly.
    expect(broker?.child.exitCode, "FLT-14 leaves the broker stopped").not.toBeNull();
    const db = await openDatabase({ kind: "postgres", url: store.databaseUrl });
    try {
      const tokens = [...acknowledged.issued, ...acknowledged.revoked].map((t) => t.access_token);
      sweepForSecrets({
        never: {
          "the upstream secret": upstreamSecret,
          ...Object.fromEntries(masterKeyForms(store.masterKey).map((form, i) => [`master key (form ${i})`, form])),
          ...Object.fromEntries((await signingPrivateParts(db.prisma, store.masterKey)).map((d, i) => [`signing private key ${i}`, d])),
        },
        notLogged: {
          ...credentials,
          "the admin key": TEST_ADMIN_KEY,
          ...Object.fromEntries(tokens.map((t, i) => [`agent token ${i}`, t])),
        },
        responses,
        logs: outputs.map((output) => output()),
        audit: await db.prisma.auditEvent.findMany(),
        atLeast: { responses: 20 },
      });
    } finally {
      await db.close();
    }
  });
});
