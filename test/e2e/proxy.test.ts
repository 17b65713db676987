import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

const SECRET = "proxy-test-secret-" + "x".repeat(20);

describe("proxy", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let slow: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream((req, res, body) => {
      if (req.url?.startsWith("/base/redirect")) {
        res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data" });
        return res.end();
      }
      if (req.url?.startsWith("/base/big")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        return res.end(Buffer.alloc(1024 * 1024, 7));
      }
      res.writeHead(200, { "content-type": "application/json", connection: "close, x-hop", "x-hop": "1", "x-kept": "1" });
      res.end(JSON.stringify({ url: req.url, bodyLength: body.length }));
    });
    slow = await startUpstream((_req, res) => setTimeout(() => res.end("late"), 3000));
    store = newStore();
    broker = await startBroker(store, { KEYWARD_UPSTREAM_TIMEOUT_MS: "500", KEYWARD_PROXY_MAX_BODY_BYTES: "1000" });
    await createUpstream(broker, { name: "api", baseUrl: `${upstream.url}/base`, environment: "staging", secret: SECRET });
    await createUpstream(broker, { name: "by-query", baseUrl: `${upstream.url}/base`, environment: "staging", secret: SECRET, auth: { type: "query", param: "api_key" } });
    await createUpstream(broker, { name: "down", baseUrl: "http://127.0.0.1:9", environment: "staging", secret: SECRET });
    await createUpstream(broker, { name: "slow", baseUrl: slow.url, environment: "staging", secret: SECRET });
    const agent = await createAgent(broker, "agent");
    const all = ["GET", "HEAD", "POST", "PUT", "DELETE"];
    for (const name of ["api", "by-query", "down", "slow"]) {
      await createGrant(broker, { name: `g-${name}`, agents: [agent.id], upstream: name, methods: all, paths: ["/v1/**", "/redirect", "/big"] });
    }
    token = await tokenFor(broker, agent, { grant: "g-api" });
    tokens.byQuery = await tokenFor(broker, agent, { grant: "g-by-query" });
    tokens.down = await tokenFor(broker, agent, { grant: "g-down" });
    tokens.slow = await tokenFor(broker, agent, { grant: "g-slow" });
  });
  const tokens: Record<string, string> = {};

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await slow?.close();
    await store?.drop();
  });

  const get = (path: string, t = token) => broker.http().get(path).set("authorization", `Bearer ${t}`);

  it("forwards under the upstream's base path, normalised", async () => {
    const res = await get("/proxy/api/v1//a/./b/../c?q=1&q=2");
    expect(res.status).toBe(200);
    expect(res.body.url).toBe("/base/v1/a/c?q=1&q=2");
  });

  it("forwards a query string the API would refuse: it belongs to the upstream, and the broker stores none of it", async () => {
    const res = await get("/proxy/api/v1/a?q=%00%ED%A0%80");
    expect(res.status).toBe(200);
    expect(res.body.url).toBe("/base/v1/a?q=%00%ED%A0%80");
    const api = await broker.http().get("/v1/upstreams?q=%00").set("authorization", `Bearer ${broker.adminKey}`);
    expect(api.status).toBe(400);
    expect(api.body.error.code).toBe("validation_failed");
  });

  it("keeps encoded characters encoded when forwarding", async () => {
    const res = await get("/proxy/api/v1/a%20b/%3Fnot-a-query");
    expect(res.status).toBe(200);
    expect(res.body.url).toBe("/base/v1/a%20b/%3Fnot-a-query");
  });

  it.each([
    ["/proxy/api/v1/../../etc/passwd", 403, "escapes"],
    ["/proxy/api/v1/%2e%2e/%2e%2e/secret", 403, "escapes"],
    ["/proxy/api/v1/a%2fb", 403, "encoded slash"],
    ["/proxy/api/v1/a%5cb", 403, "encoded slash"],
    ["/proxy/api/v1/a%00b", 403, "control"],
    ["/proxy/api/v1/a./b", 403, "dot"],
    // Overlong UTF-8 already fails the router's own decoding, before the proxy runs.
    ["/proxy/api/v1/%c0%ae%c0%ae/x", 400, undefined],
  ])("refuses %s and forwards nothing", async (path, status, reason) => {
    const before = upstream.received.length;
    const res = await get(path);
    expect(res.status).toBe(status);
    // The router's refusal is of the URL as a whole (400), the proxy's of an ambiguous path (403).
    expect(res.body.error.code).toBe(status === 400 ? "invalid_url" : "invalid_path");
    if (reason) expect(res.body.error.reason).toMatch(new RegExp(reason));
    expect(upstream.received.length).toBe(before);
  });

  it("a path that normalises out of the allowed patterns is denied", async () => {
    const before = upstream.received.length;
    const res = await get("/proxy/api/v1/../admin");
    expect(res.status).toBe(403);
    expect(upstream.received.length).toBe(before);
  });

  it("strips the agent's credentials, cookies, forwarding and hop-by-hop headers", async () => {
    await broker
      .http()
      .get("/proxy/api/v1/h")
      .set("authorization", `Bearer ${token}`)
      .set("cookie", "session=abc")
      .set("x-forwarded-host", "evil.example")
      .set("x-http-method-override", "DELETE")
      .set("connection", "x-private")
      .set("x-private", "1")
      .set("x-custom", "kept")
      .expect(200);
    const h = upstream.received.at(-1)!.headers;
    expect(h.authorization).toBe(`Bearer ${SECRET}`);
    expect(h.cookie).toBeUndefined();
    expect(h["x-forwarded-host"]).toBeUndefined();
    expect(h["x-http-method-override"]).toBeUndefined();
    expect(h["x-private"]).toBeUndefined();
    expect(h["x-custom"]).toBe("kept");
    expect(h.host).toBe(new URL(upstream.url).host);
  });

  it("drops hop-by-hop headers from the upstream's response", async () => {
    const res = await get("/proxy/api/v1/h");
    expect(res.headers["x-kept"]).toBe("1");
    expect(res.headers["x-hop"]).toBeUndefined();
  });

  it("injects a query credential, replacing any the agent sent", async () => {
    const res = await get("/proxy/by-query/v1/list?api_key=agent-guess&x=1", tokens.byQuery);
    expect(res.status).toBe(200);
    const url = new URL(upstream.received.at(-1)!.url, "http://x");
    expect(url.searchParams.getAll("api_key")).toEqual([SECRET]);
    expect(url.searchParams.get("x")).toBe("1");
    expect(res.text).toContain("/base/v1/list");
  });

  it("does not follow redirects", async () => {
    const res = await get("/proxy/api/redirect");
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe("http://169.254.169.254/latest/meta-data");
  });

  it("streams a 1 MiB response", async () => {
    const res = await get("/proxy/api/big").buffer(true).parse((r, cb) => {
      const chunks: Buffer[] = [];
      r.on("data", (c: Buffer) => chunks.push(c));
      r.on("end", () => cb(null, Buffer.concat(chunks)));
    });
    expect(res.status).toBe(200);
    expect((res.body as Buffer).length).toBe(1024 * 1024);
  });

  it("forwards request bodies and refuses bodies over the limit", async () => {
    const ok = await broker.http().post("/proxy/api/v1/items").set("authorization", `Bearer ${token}`).send({ a: 1 });
    expect(ok.status).toBe(200);
    expect(ok.body.bodyLength).toBe(7);
    const before = upstream.received.length;
    const big = await broker.http().post("/proxy/api/v1/items").set("authorization", `Bearer ${token}`).send({ a: "x".repeat(2000) });
    expect(big.status).toBe(413);
    expect(upstream.received.length).toBe(before);
  });

  it("HEAD is forwarded as HEAD", async () => {
    const res = await broker.http().head("/proxy/api/v1/h").set("authorization", `Bearer ${token}`);
    expect(res.status).toBe(200);
    expect(upstream.received.at(-1)!.method).toBe("HEAD");
  });

  it("an unreachable upstream is a 502 without details", async () => {
    const res = await get("/proxy/down/v1/x", tokens.down);
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe("upstream_unreachable");
    expect(res.text).not.toContain("127.0.0.1");
    expect(res.text).not.toContain(SECRET);
  });

  it("a slow upstream is a 504 within the timeout", async () => {
    const started = Date.now();
    const res = await get("/proxy/slow/v1/x", tokens.slow);
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe("upstream_timeout");
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("unknown upstreams are 404; tokens only work for their own upstream", async () => {
    expect((await get("/proxy/nope/v1/x")).status).toBe(404);
    const other = await get("/proxy/by-query/v1/x");
    expect(other.status).toBe(403);
    expect(other.body.error.reason).toMatch(/upstream/);
  });

  it.each([
    // RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
    ["no token", null, 'Bearer realm="keyward"'],
    ["garbage", "Bearer not.a.jwt", 'Bearer realm="keyward", error="invalid_token"'],
    ["basic scheme", "Basic Zm9vOmJhcg==", 'Bearer realm="keyward", error="invalid_token"'],
  ])("%s → 401", async (_name, header, challenge) => {
    let req = broker.http().get("/proxy/api/v1/x");
    if (header) req = req.set("authorization", header);
    const res = await req;
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe(challenge);
  });

  it("a token in the query string is not accepted", async () => {
    const res = await broker.http().get(`/proxy/api/v1/x?access_token=${token}`);
    expect(res.status).toBe(401);
  });

  it("the upstream secret appears in no log line", () => {
    expect(broker.logs.join("\n")).not.toContain(SECRET);
    expect(broker.logs.join("\n")).not.toContain(token);
  });
});
