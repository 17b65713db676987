import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type TestBroker } from "../helpers/broker.js";
import { startTempCluster, type TempCluster } from "../helpers/pg-cluster.js";
import { basic, createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "../security/cases.js";
import { masterKeyForms, signingPrivateParts, sweepForSecrets } from "../security/harness.js";
import { waitFor } from "../helpers/wait.js";

type Outcome = { status: number; code?: string; requestId?: string };

/**
 * PostgreSQL stopped under a running broker, on a throwaway cluster of the test's own (the machine's
 * main cluster and the run's embedded one are never touched).
 */
describe("faults: PostgreSQL stopped mid-run", () => {
  let cluster: TempCluster;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let token: string;
  const masterKey = randomBytes(32).toString("base64");
  const upstreamSecret = `sk-dbfault-${randomBytes(12).toString("hex")}`;
  /** Everything the clients got back, and every token issued, for the secret sweep (SEC-01). */
  const responses: string[] = [];
  const issued: string[] = [];
  const record = <T extends { headers: object; text?: string }>(res: T): T => {
    responses.push(JSON.stringify(res.headers) + "\n" + (res.text ?? ""));
    return res;
  };
  const dataDir = mkdtempSync(join(tmpdir(), "keyward-dbfault-"));
  const outcomes: Outcome[] = [];
  let load: { stop(): Promise<void> } | undefined;

  beforeAll(async () => {
    cluster = await startTempCluster();
    upstream = await startUpstream();
    broker = await startBroker(
      { dataDir, databaseUrl: `${cluster.url}?schema=keyward`, masterKey, drop: async () => {} },
      { KEYWARD_REVOCATION_RESYNC_MS: "200", KEYWARD_REVOCATION_MAX_STALENESS_MS: "1000", LOG_LEVEL: "warn" },
    );
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: upstreamSecret });
    agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });

  afterAll(async () => {
    await load?.stop();
    await broker?.close();
    await upstream?.close();
    await cluster?.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const call = async (): Promise<Outcome> => {
    const res = record(await broker.http().get("/proxy/api/v1/items").set("authorization", `Bearer ${token}`));
    return { status: res.status, code: res.body?.error?.code, requestId: res.headers["x-request-id"] };
  };

  /** Four clients calling the proxy back to back until stopped. */
  const startLoad = () => {
    let running = true;
    const workers = Array.from({ length: 4 }, async () => {
      while (running) outcomes.push(await call());
    });
    return {
      async stop() {
        running = false;
        await Promise.all(workers);
      },
    };
  };

  it(`${title("FLT-01")}; ${title("FLT-02")}; ${title("FLT-03")}`, { timeout: 60_000 }, async () => {
    load = startLoad();
    await waitFor(() => outcomes.filter((o) => o.status === 200).length >= 20, 15_000, "calls before the stop");

    cluster.stop("immediate");
    // Calls already past their audit write when the server died may still complete; once the
    // clients have seen the broker refuse, nothing more may reach the upstream.
    const stoppedAt = outcomes.length;
    await waitFor(() => outcomes.slice(stoppedAt).filter((o) => o.status === 503).length >= 8, 15_000, "503s");
    const forwardedBefore = upstream.received.length;
    const outageFrom = outcomes.length;

    // FLT-02: the rest of the API says 503 too, never 500.
    const tokenRes = record(await broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).send({ grant: "g" }));
    expect(tokenRes.status).toBe(statusOf("FLT-02"));
    expect(tokenRes.body.error.code).toBe("database_unavailable");
    for (const path of ["/v1/agents", "/v1/audit", "/v1/revocations"]) {
      const res = record(await broker.admin("get", path));
      expect(res.status, path).toBe(statusOf("FLT-02"));
      expect(res.body.error.code, path).toBe("database_unavailable");
    }
    // Past the revocation staleness limit as well.
    await new Promise((r) => setTimeout(r, 1200));
    const outage = outcomes.slice(outageFrom);
    expect(outage.length).toBeGreaterThan(10);
    for (const o of outage) expect(o.status).toBe(statusOf("FLT-01"));
    expect(upstream.received.length).toBe(forwardedBefore);

    cluster.start();
    const recoveredFrom = outcomes.length;
    await waitFor(() => outcomes.slice(recoveredFrom).some((o) => o.status === statusOf("FLT-03")), 20_000, "recovery");
    const recovered = outcomes.length;
    await waitFor(() => outcomes.slice(recovered).filter((o) => o.status === 200).length >= 20, 15_000, "calls after recovery");
    await load.stop();
    // Once recovered, it stays recovered.
    for (const o of outcomes.slice(recovered)) expect(o.status).toBe(200);
    const after = record(await broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).send({ grant: "g" }));
    expect(after.status).toBe(200);
    issued.push(after.body.access_token);

    // Never a 500 or anything but success and "unavailable", at any point.
    expect(new Set(outcomes.map((o) => o.status))).toEqual(new Set([200, 503]));
  });

  it(title("FLT-04"), async () => {
    const prisma = broker.keyward.db.prisma;
    const answered = outcomes.filter((o) => o.status === 200).map((o) => o.requestId!);
    expect(answered.length).toBeGreaterThan(40);
    // Outcomes of calls answered while the database was away were kept and are written once it is back
    // (src/audit/log.ts): wait until none is waiting.
    await waitFor(() => broker.keyward.auditBacklog() === 0, 10_000, "kept audit events written");
    const rows = await prisma.auditEvent.findMany({ where: { requestId: { in: answered } }, select: { requestId: true, kind: true, decision: true, status: true } });
    for (const id of answered) {
      const mine = rows.filter((r) => r.requestId === id);
      expect(mine.find((r) => r.kind === "proxy"), id).toMatchObject({ decision: "allow" });
      expect(mine.find((r) => r.kind === "proxy.response"), id).toMatchObject({ status: 200 });
    }
    // Nothing reached the upstream without its allow decision on record first.
    const allowed = await prisma.auditEvent.count({ where: { kind: "proxy", decision: "allow" } });
    expect(allowed).toBeGreaterThanOrEqual(upstream.received.length);
  });

  it("a token asked for while the database is down is refused once the broker knows it, and one answered before is recorded once it is back; nothing is left stuck", { timeout: 60_000 }, async () => {
    await waitFor(() => broker.keyward.auditBacklog() === 0, 10_000, "nothing waiting for the database");
    cluster.stop("immediate");
    const askToken = async () => record(await broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).send({ grant: "g" }));
    let answered: { access_token: string; jti: string } | undefined;
    try {
      // Before the broker has noticed, a token is answered once its record is spooled, like a call's event.
      const first = await askToken();
      expect([200, 503]).toContain(first.status);
      if (first.status === 200) answered = first.body;
      // Once it has (its log's shipping failed), none is issued: fail closed.
      await waitFor(async () => (await call()).status === 503, 10_000, "the broker to notice the database is down");
      const refused = await askToken();
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe("database_unavailable");
    } finally {
      cluster.start();
    }
    // The audit log finds the database back by itself (the readiness check may have marked it down while
    // nothing waited: its retry then asks the database rather than leave calls refused until a restart).
    await waitFor(async () => (await call()).status === 200, 20_000, "a call served after the database came back");
    if (answered) {
      issued.push(answered.access_token);
      // Recorded once the database took the log's events: revocable by its jti.
      expect((await broker.admin("post", "/v1/revocations", { jti: answered.jti })).status).toBe(201);
    }
    const res = record(await broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).send({ grant: "g" }));
    expect(res.status).toBe(200);
    issued.push(res.body.access_token);
  });

  it(title("SEC-01"), async () => {
    // The outage made the broker log database errors: none of them carries a secret.
    const prisma = broker.keyward.db.prisma;
    sweepForSecrets({
      never: {
        "the upstream secret": upstreamSecret,
        ...Object.fromEntries(masterKeyForms(masterKey).map((form, i) => [`master key (form ${i})`, form])),
        ...Object.fromEntries((await signingPrivateParts(prisma, masterKey)).map((d, i) => [`signing private key ${i}`, d])),
      },
      notLogged: {
        "the client secret": agent.clientSecret,
        "the admin key": broker.adminKey,
        ...Object.fromEntries([token, ...issued].map((t, i) => [`agent token ${i}`, t])),
      },
      responses,
      logs: broker.logs,
      audit: await prisma.auditEvent.findMany(),
      atLeast: { responses: 50, logs: 1 },
    });
  });
});
