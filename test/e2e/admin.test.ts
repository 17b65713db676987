import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

describe("admin API", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let securityKey: string;
  let auditorKey: string;
  let agentToken: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "first-secret-value" });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    agentToken = await tokenFor(broker, agent, { grant: "g" });
    securityKey = (await broker.admin("post", "/v1/admin-keys", { name: "sec", role: "security" })).body.key;
    auditorKey = (await broker.admin("post", "/v1/admin-keys", { name: "aud", role: "auditor" })).body.key;
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const as = (key: string | null, method: "get" | "post" | "delete" | "patch" | "put", path: string, body?: object) => {
    let req = broker.http()[method](path);
    if (key) req = req.set("authorization", `Bearer ${key}`);
    return body ? req.send(body) : req;
  };

  const routes: ["get" | "post" | "delete" | "patch" | "put", string, string][] = [
    ["get", "/v1/upstreams", "manage"],
    ["post", "/v1/upstreams", "manage"],
    ["get", "/v1/upstreams/api", "manage"],
    ["patch", "/v1/upstreams/api", "manage"],
    ["put", "/v1/upstreams/api/secret", "manage"],
    ["delete", "/v1/upstreams/api", "manage"],
    ["get", "/v1/agents", "manage"],
    ["post", "/v1/agents", "manage"],
    ["delete", "/v1/agents/x", "manage"],
    ["get", "/v1/grants", "manage"],
    ["post", "/v1/grants", "manage"],
    ["patch", "/v1/grants/x", "manage"],
    ["delete", "/v1/grants/x", "manage"],
    ["get", "/v1/admin-keys", "manage"],
    ["post", "/v1/admin-keys", "manage"],
    ["delete", "/v1/admin-keys/x", "manage"],
    ["post", "/v1/revocations", "revoke"],
    ["get", "/v1/revocations", "revoke"],
    ["get", "/v1/audit", "read_audit"],
  ];

  it.each(routes)("%s %s without a key → 401", async (method, path) => {
    const res = await as(null, method, path, {});
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthenticated");
  });

  it.each(routes)("%s %s with an agent token → 401", async (method, path) => {
    const res = await as(agentToken, method, path, {});
    expect(res.status).toBe(401);
  });

  it.each(routes)("%s %s is role-checked", async (method, path, permission) => {
    const security = await as(securityKey, method, path, {});
    const auditor = await as(auditorKey, method, path, {});
    if (permission === "manage") {
      expect(security.status).toBe(403);
      expect(auditor.status).toBe(403);
    } else if (permission === "revoke") {
      expect(security.status).not.toBe(403);
      expect(auditor.status).toBe(403);
    } else {
      expect(security.status).toBe(200);
      expect(auditor.status).toBe(200);
    }
  });

  it("an admin key is not an agent token", async () => {
    const res = await broker.http().get("/proxy/api/x").set("authorization", `Bearer ${broker.adminKey}`);
    expect(res.status).toBe(401);
    expect(upstream.received).toHaveLength(0);
  });

  it("upstreams never show their secret, and replacing it takes effect at once", async () => {
    const shown = await broker.admin("get", "/v1/upstreams/api");
    expect(shown.status).toBe(200);
    expect(shown.body.secret).toEqual({ set: true, updatedAt: expect.any(String) });
    expect(shown.text).not.toContain("first-secret-value");

    const put = await broker.admin("put", "/v1/upstreams/api/secret", { secret: "second-secret-value" });
    expect(put.status).toBe(200);
    expect(put.text).not.toContain("second-secret-value");
    await broker.http().get("/proxy/api/x").set("authorization", `Bearer ${agentToken}`).expect(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer second-secret-value");

    const stored = await broker.keyward.db.prisma.upstream.findUniqueOrThrow({ where: { name: "api" } });
    expect(JSON.stringify(stored)).not.toContain("second-secret-value");
  });

  it("editing a grant narrows live tokens at once", async () => {
    const grants = (await broker.admin("get", "/v1/grants")).body.grants;
    const g = grants.find((x: { name: string }) => x.name === "g");
    await broker.http().get("/proxy/api/allowed/1").set("authorization", `Bearer ${agentToken}`).expect(200);
    const patched = await broker.admin("patch", `/v1/grants/${g.id}`, { paths: ["/allowed/**"], deny: [{ path: "/allowed/secret/**" }] });
    expect(patched.status).toBe(200);
    await broker.http().get("/proxy/api/other").set("authorization", `Bearer ${agentToken}`).expect(403);
    await broker.http().get("/proxy/api/allowed/secret/x").set("authorization", `Bearer ${agentToken}`).expect(403);
    await broker.http().get("/proxy/api/allowed/2").set("authorization", `Bearer ${agentToken}`).expect(200);
  });

  it("moving an upstream to another origin needs its secret again", async () => {
    await createUpstream(broker, { name: "movable", baseUrl: "https://api.example.com/v1", environment: "staging", secret: "movable-secret" });
    const moved = await broker.admin("patch", "/v1/upstreams/movable", { baseUrl: "https://attacker.example" });
    expect(moved.status).toBe(400);
    expect(moved.body.error.details).toEqual([expect.objectContaining({ path: "/secret" })]);
    expect((await broker.admin("get", "/v1/upstreams/movable")).body.baseUrl).toBe("https://api.example.com/v1");
    expect((await broker.admin("patch", "/v1/upstreams/movable", { baseUrl: "https://api.example.com/v2" })).status).toBe(200);
    const withSecret = await broker.admin("patch", "/v1/upstreams/movable", { baseUrl: "https://other.example", secret: "new-secret" });
    expect(withSecret.status).toBe(200);
    expect(withSecret.body.baseUrl).toBe("https://other.example");
  });

  it("an upstream in use by a grant cannot be deleted", async () => {
    const res = await broker.admin("delete", "/v1/upstreams/api");
    expect(res.status).toBe(409);
  });

  it("admin keys can be revoked, but not the last admin key", async () => {
    const created = await broker.admin("post", "/v1/admin-keys", { name: "temp", role: "admin" });
    expect(created.status).toBe(201);
    expect(created.body.key).toMatch(/^kwa_/);
    await as(created.body.key, "get", "/v1/agents").expect(200);
    expect((await broker.admin("delete", `/v1/admin-keys/${created.body.id}`)).status).toBe(204);
    await as(created.body.key, "get", "/v1/agents").expect(401);

    const keys = (await broker.admin("get", "/v1/admin-keys")).body.adminKeys;
    expect(JSON.stringify(keys)).not.toMatch(/keyHash|kwa_/);
    const bootstrap = keys.find((k: { name: string }) => k.name === "bootstrap");
    expect((await broker.admin("delete", `/v1/admin-keys/${bootstrap.id}`)).status).toBe(409);
  });

  it("every admin change is audited with its actor", async () => {
    const res = await as(auditorKey, "get", "/v1/audit?kind=admin.change&limit=100");
    const actions = res.body.events.map((e: { details: { action: string } }) => e.details.action);
    expect(actions).toEqual(
      expect.arrayContaining(["upstream.create", "upstream.set_secret", "agent.create", "grant.create", "grant.update", "admin_key.create", "admin_key.revoke"]),
    );
    expect(res.text).not.toContain("second-secret-value");
  });

  it("audit pages by cursor without gaps or repeats", async () => {
    const all = (await broker.admin("get", "/v1/audit?limit=500")).body.events.map((e: { id: string }) => e.id);
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { events: { id: string }[]; nextCursor: string | null } } = await broker.admin(
        "get",
        `/v1/audit?limit=7${cursor ? `&cursor=${cursor}` : ""}`,
      );
      paged.push(...res.body.events.map((e) => e.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(paged).toEqual(all);
    expect(all.length).toBeGreaterThan(14);
  });
});
