import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_SECURITY_HEADERS, consolePlugin } from "../../src/console/plugin.js";
import { registerErrorHandling } from "../../src/http/error-handler.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { ACCESS_TOKEN_TYPE, postForm, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;
type LiveToken = { jti: string; agent: { id: string; name: string }; grant: { id: string; name: string }; environment: string; calls: { allowed: number; denied: number } };

const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;

describe("console API: whoami, directory, live tokens, audit activity and live tail", () => {
  let store: Store;
  let broker: TestBroker;
  let brokerClosed = false;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: Agent;
  let bob: Agent;
  let grantA: { id: string };
  let keys: { security: string; auditor: string };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "console-api-secret" });
    alice = await createAgent(broker, "alice");
    bob = await createAgent(broker, "bob");
    const base = { upstream: "api", methods: ["GET", "POST"], paths: ["/**"], deny: [{ method: "POST" }] };
    grantA = await createGrant(broker, { ...base, name: "grant-a", agents: [alice.id, bob.id] });
    await createGrant(broker, { ...base, name: "grant-b", agents: [alice.id] });
    const keyOf = async (role: string) => (await broker.admin("post", "/v1/admin-keys", { name: role, role })).body.key as string;
    keys = { security: await keyOf("security"), auditor: await keyOf("auditor") };
  });

  afterAll(async () => {
    if (!brokerClosed) await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const as = (key: string, path: string) => broker.http().get(path).set("authorization", `Bearer ${key}`);
  const live = async (query = "") => {
    const res = await broker.admin("get", `/v1/tokens${query}`);
    expect(res.status).toBe(200);
    return res.body.tokens as LiveToken[];
  };
  const call = (token: string, method: "get" | "post" = "get") => broker.http()[method]("/proxy/api/thing").set("authorization", `Bearer ${token}`);

  it("GET /v1/whoami tells each key its role and permissions", async () => {
    expect((await broker.admin("get", "/v1/whoami")).body).toMatchObject({ name: "bootstrap", role: "admin", permissions: expect.arrayContaining(["manage"]) });
    const security = (await as(keys.security, "/v1/whoami")).body;
    expect(security.role).toBe("security");
    expect(security.permissions).toEqual(expect.arrayContaining(["revoke", "approve", "read_audit"]));
    expect(security.permissions).not.toContain("manage");
    expect((await as(keys.auditor, "/v1/whoami")).body.permissions).toEqual(["read_audit"]);
    expect((await broker.http().get("/v1/whoami")).status).toBe(401);
  });

  it("GET /v1/directory names agents, grants and admin keys for every role", async () => {
    const res = await as(keys.auditor, "/v1/directory");
    expect(res.status).toBe(200);
    expect(res.body.agents).toEqual([
      { id: alice.id, name: "alice" },
      { id: bob.id, name: "bob" },
    ]);
    expect(res.body.grants.map((g: { name: string }) => g.name)).toEqual(["grant-a", "grant-b"]);
    expect(res.body.adminKeys.map((k: { name: string }) => k.name)).toEqual(["bootstrap", "security", "auditor"]);
  });

  it("GET /v1/tokens lists live tokens with names, environment and calls so far; revoked ones drop out", async () => {
    const token = await tokenFor(broker, alice, { grant: "grant-a" });
    const other = await tokenFor(broker, bob, { grant: "grant-a" });
    expect((await call(token)).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    expect((await call(token, "post")).status).toBe(403);

    const row = (await live()).find((t) => t.jti === jtiOf(token));
    expect(row).toMatchObject({
      agent: { id: alice.id, name: "alice" },
      grant: { id: grantA.id, name: "grant-a" },
      upstream: "api",
      environment: "staging",
      methods: ["GET", "POST"],
      calls: { allowed: 2, denied: 1 },
    });
    expect((await live(`?agentId=${bob.id}`)).map((t) => t.jti)).toEqual([jtiOf(other)]);

    expect((await broker.admin("post", "/v1/revocations", { jti: jtiOf(token) })).status).toBe(201);
    const after = (await live()).map((t) => t.jti);
    expect(after).not.toContain(jtiOf(token));
    expect(after).toContain(jtiOf(other));

    expect((await broker.admin("post", "/v1/revocations", { grantId: grantA.id })).status).toBe(201);
    expect((await live()).map((t) => t.jti)).not.toContain(jtiOf(other));
  });

  it("GET /v1/tokens drops a token exchanged from a revoked one, and expired tokens", async () => {
    const parent = await tokenFor(broker, alice, { grant: "grant-b" });
    const child = await postForm(broker, "/oauth2/token", { grant_type: TOKEN_EXCHANGE, subject_token: parent, subject_token_type: ACCESS_TOKEN_TYPE });
    expect(child.status).toBe(200);
    const short = await tokenFor(broker, alice, { grant: "grant-b", ttlSeconds: 1 });
    const jtis = (await live()).map((t) => t.jti);
    expect(jtis).toEqual(expect.arrayContaining([jtiOf(parent), jtiOf(child.body.access_token)]));

    expect((await broker.admin("post", "/v1/revocations", { jti: jtiOf(parent) })).status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const remaining = (await live()).map((t) => t.jti);
    for (const gone of [parent, child.body.access_token as string, short]) expect(remaining).not.toContain(jtiOf(gone));
  });

  it("GET /v1/tokens is for admin and security keys", async () => {
    expect((await as(keys.security, "/v1/tokens")).status).toBe(200);
    expect((await as(keys.auditor, "/v1/tokens")).status).toBe(403);
  });

  it("GET /v1/audit/activity counts calls and denials per minute, the current minute last", async () => {
    const res = await as(keys.auditor, "/v1/audit/activity?minutes=5");
    expect(res.status).toBe(200);
    const minutes = res.body.minutes as { minute: string; allowed: number; denied: number }[];
    expect(minutes).toHaveLength(5);
    expect(Date.parse(minutes[4]!.minute)).toBe(Math.floor(Date.now() / 60_000) * 60_000);
    const total = minutes.reduce((sum, m) => ({ allowed: sum.allowed + m.allowed, denied: sum.denied + m.denied }), { allowed: 0, denied: 0 });
    const proxyEvents = await broker.keyward.db.prisma.auditEvent.groupBy({ by: ["decision"], where: { kind: "proxy" }, _count: { _all: true } });
    const count = (decision: string) => proxyEvents.find((g) => g.decision === decision)?._count._all ?? 0;
    expect(total).toEqual({ allowed: count("allow"), denied: count("deny") });
    expect(total.denied).toBeGreaterThan(0);
  });

  it("GET /v1/audit/stream sends the events after afterId, then new ones as they are written", async () => {
    const head = (await broker.admin("get", "/v1/audit?limit=1")).body.events[0].id as string;
    const controller = new AbortController();
    const res = await fetch(`${broker.url}/v1/audit/stream?afterId=${head}&kind=revocation.created`, {
      headers: { authorization: `Bearer ${keys.auditor}` },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    expect((await broker.admin("post", "/v1/revocations", { agentId: bob.id, reason: "tail me" })).status).toBe(201);
    let received = "";
    while (!/event: audit\ndata: .*\n\n/.test(received)) received += (await reader.read()).value ?? "";
    const data = JSON.parse(/data: (.*)\n/.exec(received)![1]!);
    expect(data).toMatchObject({ kind: "revocation.created", agentId: bob.id, reason: "tail me" });
    expect(BigInt(data.id)).toBeGreaterThan(BigInt(head));
    controller.abort();
  });

  it("GET /v1/audit/stream needs afterId and a key that may read the audit log", async () => {
    expect((await broker.http().get("/v1/audit/stream?afterId=0")).status).toBe(401);
    expect((await broker.admin("get", "/v1/audit/stream")).status).toBe(400);
  });

  it("serves the console under /console/ with a strict CSP, and /console redirects there", async () => {
    const redirect = await broker.http().get("/console");
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe("/console/");
    const page = await broker.http().get("/console/");
    expect(page.status, "console/dist is built by npm install (npm run build:console)").toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers).toMatchObject(CONSOLE_SECURITY_HEADERS);
    expect(page.headers["cache-control"]).toBe("no-cache");
    expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const script = /<script[^>]*\bsrc="([^"]+)"/.exec(page.text)![1]!;
    const asset = await broker.http().get(script);
    expect(asset.status).toBe(200);
    expect(asset.headers["content-type"]).toMatch(/javascript/);
    expect(asset.headers["cache-control"]).toContain("immutable");
    expect(asset.headers["x-frame-options"]).toBe("DENY");
  });

  // Last: it closes the broker.
  it("closing the broker ends open audit streams instead of waiting for them", async () => {
    const res = await fetch(`${broker.url}/v1/audit/stream?afterId=0`, { headers: { authorization: `Bearer ${keys.auditor}` } });
    const reader = res.body!.getReader();
    await reader.read();
    const startedAt = Date.now();
    await broker.close();
    brokerClosed = true;
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read());
  });
});

describe("console without a build", () => {
  it("answers 503 with how to build it, and the rest of the server is unaffected", async () => {
    const empty = mkdtempSync(join(tmpdir(), "keyward-console-"));
    const app = Fastify();
    registerErrorHandling(app);
    await app.register(consolePlugin, { root: empty });
    app.get("/healthz", async () => ({ status: "ok" }));
    try {
      for (const url of ["/console", "/console/", "/console/assets/index.js"]) {
        const res = await app.inject(url);
        expect(res.statusCode, url).toBe(503);
        expect(res.json().error).toMatchObject({ code: "console_not_built", message: expect.stringContaining("npm run build:console") });
        expect(res.headers["x-frame-options"]).toBe("DENY");
      }
      expect((await app.inject("/healthz")).statusCode).toBe(200);
    } finally {
      await app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
