import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { basic, createAgent, createGrant, createUpstream, issueToken } from "../helpers/scenario.js";

/** Bad input gets a clear 4xx with a machine-readable code, and nothing is written. */
describe("bad input", () => {
  let store: Store;
  let broker: TestBroker;
  let agent: Awaited<ReturnType<typeof createAgent>>;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: "http://127.0.0.1:9", environment: "staging", secret: "bad-input-secret" });
    agent = await createAgent(broker, "agent-1");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET", "POST"], paths: ["/v1/**"], maxTtlSeconds: 600 });
  });

  afterAll(async () => {
    await broker?.close();
    await store?.drop();
  });

  const counts = async () => {
    // A reader of the log waits for this broker's own events first, and with them the records of tokens
    // it issued (answered once spooled, recorded a moment later): what is counted has settled.
    expect((await broker.admin("get", "/v1/audit?limit=1")).status).toBe(200);
    const p = broker.keyward.db.prisma;
    return {
      upstreams: await p.upstream.count(),
      agents: await p.agent.count(),
      grants: await p.grant.count(),
      tokens: await p.issuedToken.count(),
      revocations: await p.revocation.count(),
    };
  };

  const raw = (path: string, body: string, contentType = "application/json") =>
    broker.http().post(path).set("authorization", `Bearer ${broker.adminKey}`).set("content-type", contentType).send(body);

  it.each([
    ["malformed JSON", () => raw("/v1/upstreams", '{"name": "x",'), 400, "invalid_json"],
    ["unknown field", () => broker.admin("post", "/v1/agents", { name: "x", role: "admin" }), 400, "validation_failed"],
    ["mass-assigned clientSecret", () => broker.admin("post", "/v1/agents", { name: "x", clientSecret: "mine" }), 400, "validation_failed"],
    ["wrong type", () => broker.admin("post", "/v1/agents", { name: 42 }), 400, "validation_failed"],
    [
      "upstream with credentials in the URL",
      () => broker.admin("post", "/v1/upstreams", { name: "u2", baseUrl: "https://user:pw@example.com", environment: "prod", auth: { type: "header" }, secret: "s" }),
      400,
      "validation_failed",
    ],
    [
      "upstream with a non-http URL",
      () => broker.admin("post", "/v1/upstreams", { name: "u3", baseUrl: "file:///etc/passwd", environment: "prod", auth: { type: "header" }, secret: "s" }),
      400,
      "validation_failed",
    ],
    [
      "secret with a line break (header injection)",
      () => broker.admin("post", "/v1/upstreams", { name: "u4", baseUrl: "https://example.com", environment: "prod", auth: { type: "header" }, secret: "a\r\nX-Evil: 1" }),
      400,
      "validation_failed",
    ],
    [
      "template without {secret}",
      () => broker.admin("post", "/v1/upstreams", { name: "u5", baseUrl: "https://example.com", environment: "prod", auth: { type: "header", template: "Bearer" }, secret: "s" }),
      400,
      "validation_failed",
    ],
    [
      "grant naming an unknown upstream",
      () => broker.admin("post", "/v1/grants", { name: "g2", agents: [agent.id], upstream: "nope", methods: ["GET"], paths: ["/**"] }),
      400,
      "unknown_reference",
    ],
    [
      "grant naming an unknown agent",
      () => broker.admin("post", "/v1/grants", { name: "g3", agents: ["no-such-agent"], upstream: "api", methods: ["GET"], paths: ["/**"] }),
      400,
      "unknown_reference",
    ],
    [
      "grant with a bad path pattern",
      () => broker.admin("post", "/v1/grants", { name: "g4", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/a/../b"] }),
      400,
      "validation_failed",
    ],
    [
      "grant TTL over the ceiling",
      () => broker.admin("post", "/v1/grants", { name: "g5", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/**"], maxTtlSeconds: 7200 }),
      400,
      "validation_failed",
    ],
    ["oversize body", () => raw("/v1/agents", JSON.stringify({ name: "x", description: "d".repeat(200_000) })), 413, "payload_too_large"],
    ["wrong content type", () => raw("/v1/agents", "name=x", "application/x-www-form-urlencoded"), 415, "unsupported_media_type"],
  ])("%s → %i %s, nothing written", async (_name, send, status, code) => {
    const before = await counts();
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(code);
    expect(res.text).not.toMatch(/at .*\.ts:\d+/); // no stack traces
    expect(await counts()).toEqual(before);
  });

  it("validation errors carry the zod issues in details", async () => {
    const res = await broker.admin("post", "/v1/agents", { name: 42 });
    expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "/name" })]));
  });

  it("duplicate names are a 409", async () => {
    const res = await broker.admin("post", "/v1/agents", { name: "agent-1" });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
  });

  describe("token requests", () => {
    it.each([
      ["unknown grant", { grant: "no-such-grant" }, 404, "not_found"],
      ["more methods than the grant", { grant: "g", methods: ["DELETE"] }, 403, "widening_refused"],
      ["wider paths than the grant", { grant: "g", paths: ["/**"] }, 403, "widening_refused"],
      ["longer TTL than the grant", { grant: "g", ttlSeconds: 601 }, 403, "widening_refused"],
      ["unknown field", { grant: "g", admin: true }, 400, "validation_failed"],
    ])("%s → %i %s, no token recorded", async (_name, body, status, code) => {
      const before = await counts();
      const res = await issueToken(broker, agent, body);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.access_token).toBeUndefined();
      expect(await counts()).toEqual(before);
    });

    it("a narrower request is granted as asked", async () => {
      const res = await issueToken(broker, agent, { grant: "g", methods: ["GET"], paths: ["/v1/projects/*"], ttlSeconds: 60 });
      expect(res.status).toBe(200);
      expect(res.headers["cache-control"]).toBe("no-store");
      expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 60, scope: "api:GET" });
      const claims = JSON.parse(Buffer.from(res.body.access_token.split(".")[1], "base64url").toString());
      expect(claims.cap).toEqual({ upstream: "api", methods: ["GET"], paths: ["/v1/projects/*"] });
      expect(claims.exp - claims.iat).toBe(60);
      expect(JSON.stringify(claims)).not.toContain("bad-input-secret");
    });

    it.each([
      ["wrong client secret", () => basic(agent.clientId, "kws_wrong")],
      ["unknown client id", () => basic("kwc_nobody", agent.clientSecret)],
      ["no credentials", () => ""],
      ["bearer instead of basic", () => `Bearer ${agent.clientSecret}`],
    ])("%s → 401 invalid_client", async (_name, header) => {
      const before = await counts();
      let req = broker.http().post("/v1/tokens");
      const value = header();
      if (value) req = req.set("authorization", value);
      const res = await req.send({ grant: "g" });
      expect(res.status).toBe(401);
      expect(res.body.error.code).toMatch(/invalid_client|unauthenticated/);
      expect(await counts()).toEqual(before);
    });

    it("refusals are audited without the secret", async () => {
      const res = await broker.admin("get", "/v1/audit?kind=token.refused&limit=100");
      expect(res.body.events.length).toBeGreaterThanOrEqual(6);
      expect(res.text).not.toContain(agent.clientSecret);
    });
  });
});
