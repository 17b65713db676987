import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

const STAGING_SECRET = "stg-live-key-" + "s".repeat(24);
const PROD_SECRET = "prod-live-key-" + "p".repeat(24);

/** The incident: an agent on a staging task must not be able to touch production or delete anything. */
describe("incident scenario", () => {
  let store: Store;
  let broker: TestBroker;
  let staging: Awaited<ReturnType<typeof startUpstream>>;
  let production: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;
  const responses: string[] = [];

  beforeAll(async () => {
    staging = await startUpstream();
    production = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "hosting-staging", baseUrl: staging.url, environment: "staging", secret: STAGING_SECRET });
    await createUpstream(broker, { name: "hosting-prod", baseUrl: production.url, environment: "production", secret: PROD_SECRET });
    const agent = await createAgent(broker, "ci-agent");
    await createGrant(broker, {
      name: "deploy-staging",
      agents: [agent.id],
      upstream: "hosting-staging",
      methods: ["GET", "POST"],
      paths: ["/v1/**"],
      deny: [{ method: "DELETE" }],
    });
    token = await tokenFor(broker, agent, { grant: "deploy-staging" });
  });

  afterAll(async () => {
    await broker?.close();
    await staging?.close();
    await production?.close();
    await store?.drop();
  });

  const call = async (method: "get" | "post" | "delete", path: string, body?: object) => {
    let req = broker.http()[method](path).set("authorization", `Bearer ${token}`);
    if (body) req = req.send(body);
    const res = await req;
    responses.push(res.text, JSON.stringify(res.headers));
    return res;
  };

  it("forwards staging GET with the real key and without the agent's token", async () => {
    const res = await call("get", "/proxy/hosting-staging/v1/projects?limit=5");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, method: "GET", url: "/v1/projects?limit=5" });
    const received = staging.received.at(-1)!;
    expect(received.headers.authorization).toBe(`Bearer ${STAGING_SECRET}`);
    expect(JSON.stringify(received.headers)).not.toContain(token);
  });

  it("forwards staging POST with its body", async () => {
    const res = await call("post", "/proxy/hosting-staging/v1/deployments", { ref: "main" });
    expect(res.status).toBe(200);
    const received = staging.received.at(-1)!;
    expect(received.method).toBe("POST");
    expect(JSON.parse(received.body)).toEqual({ ref: "main" });
  });

  it("denies DELETE on staging and forwards nothing", async () => {
    const before = staging.received.length;
    const res = await call("delete", "/proxy/hosting-staging/v1/volumes/vol-1");
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("method_not_granted");
    expect(res.body.error.reason).toMatch(/DELETE/);
    expect(staging.received.length).toBe(before);
  });

  it("denies everything on production and forwards nothing", async () => {
    for (const [method, path] of [
      ["get", "/proxy/hosting-prod/v1/projects"],
      ["post", "/proxy/hosting-prod/v1/deployments"],
      ["delete", "/proxy/hosting-prod/v1/volumes/vol-1"],
    ] as const) {
      const res = await call(method, path);
      expect(res.status).toBe(403);
    }
    expect(production.received).toHaveLength(0);
  });

  it("audits allowed and denied calls", async () => {
    const res = await broker.admin("get", "/v1/audit?limit=100");
    expect(res.status).toBe(200);
    const proxy = res.body.events.filter((e: { kind: string }) => e.kind === "proxy");
    expect(proxy.filter((e: { decision: string }) => e.decision === "allow")).toHaveLength(2);
    expect(proxy.filter((e: { decision: string }) => e.decision === "deny")).toHaveLength(4);
    const responsesLogged = res.body.events.filter((e: { kind: string }) => e.kind === "proxy.response");
    expect(responsesLogged.map((e: { status: number }) => e.status)).toEqual([200, 200]);
  });

  it("never shows the upstream secrets or the token in responses, logs or audit", async () => {
    const audit = await broker.admin("get", "/v1/audit?limit=500");
    const upstreams = await broker.admin("get", "/v1/upstreams");
    const everything = [...responses, ...broker.logs, audit.text, upstreams.text].join("\n");
    expect(broker.logs.length).toBeGreaterThan(5);
    for (const secret of [STAGING_SECRET, PROD_SECRET, token, store.masterKey]) {
      expect(everything).not.toContain(secret);
    }
  });
});
