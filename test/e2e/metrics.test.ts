import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/** The value of one sample in Prometheus' text format, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = (match[2] ?? "").split(",").filter(Boolean);
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) return Number(match[3]);
  }
  return undefined;
}

describe("operations endpoints", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let auditorKey: string;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    upstream = await startUpstream();
    auditorKey = (await broker.admin("post", "/v1/admin-keys", { name: "prometheus", role: "auditor" })).body.key;
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const metrics = async () => {
    const res = await broker.http().get("/metrics").set("authorization", `Bearer ${auditorKey}`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0.0.4/);
    return res.text;
  };

  it("/healthz and /readyz: up, and ready with every check passing", async () => {
    expect((await broker.http().get("/healthz")).body).toEqual({ status: "ok" });
    expect((await broker.http().get("/readyz")).body).toEqual({ status: "ready", checks: { database: true, revocationState: true, signingKey: true, auditLog: true, auditSpool: true } });
  });

  it("/metrics needs an admin key allowed to read the audit log", async () => {
    expect((await broker.http().get("/metrics")).status).toBe(401);
    expect((await broker.http().get("/metrics").set("authorization", "Bearer kwa_unknown_key_000000000000000000000")).status).toBe(401);
    expect(await metrics()).toMatch(/^# HELP keyward_process_cpu_user_seconds_total/m);
  });

  it("counts proxied calls by upstream, decision and status; issuance; revocations; audit writes", async () => {
    await createUpstream(broker, { name: "hosting-staging", baseUrl: upstream.url, environment: "staging", secret: "real-key" });
    const agent = await createAgent(broker, "deploy-bot");
    await createGrant(broker, { name: "deploy-staging", agents: [agent.id], upstream: "hosting-staging", methods: ["GET"], paths: ["/v1/**"] });
    const token = await tokenFor(broker, agent, { grant: "deploy-staging" });
    const call = (method: "get" | "delete", path: string) => broker.http()[method](path).set("authorization", `Bearer ${token}`);
    expect((await call("get", "/proxy/hosting-staging/v1/projects")).status).toBe(200);
    expect((await call("get", "/proxy/hosting-staging/v1/projects")).status).toBe(200);
    expect((await call("delete", "/proxy/hosting-staging/v1/projects/1")).status).toBe(403);
    // A name nobody registered is not a label: callers must not be able to mint label values.
    expect((await call("get", "/proxy/made-up-upstream/v1/x")).status).toBe(404);
    const { jti } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    await broker.admin("post", "/v1/revocations", { jti, reason: "done" });
    await broker.admin("post", "/v1/kill-switch", {});

    const text = await metrics();
    expect(sample(text, "keyward_proxy_requests_total", { upstream: "hosting-staging", decision: "allow", status: "200" })).toBe(2);
    expect(sample(text, "keyward_proxy_requests_total", { upstream: "hosting-staging", decision: "deny", status: "403" })).toBe(1);
    expect(sample(text, "keyward_proxy_requests_total", { upstream: "-", decision: "deny", status: "404" })).toBe(1);
    expect(text).not.toContain("made-up-upstream");
    expect(sample(text, "keyward_proxy_request_duration_seconds_count", { upstream: "hosting-staging", decision: "allow" })).toBe(2);
    expect(sample(text, "keyward_tokens_issued_total")).toBe(1);
    expect(sample(text, "keyward_revocations_total", { selector: "jti" })).toBe(1);
    expect(sample(text, "keyward_revocations_total", { selector: "kill_switch" })).toBe(1);
    // proxy + proxy.response for each forwarded call, proxy for each refused one.
    expect(sample(text, "keyward_audit_write_duration_seconds_count", { kind: "proxy" })).toBe(4);
    expect(sample(text, "keyward_audit_write_duration_seconds_count", { kind: "proxy.response" })).toBe(2);
    // Each of those 6 events was spooled in a group fdatasync before its call went on (calls one at a
    // time: a group each), besides the issued token's record, which waits for the database instead.
    expect(sample(text, "keyward_audit_spool_sync_duration_seconds_count")).toBeGreaterThanOrEqual(6);
    expect(sample(text, "keyward_audit_write_duration_seconds_bucket", { kind: "token.issued", le: "+Inf" })).toBe(1);
    await broker.admin("delete", "/v1/kill-switch", {});
  });

  it("logs structured JSON lines carrying the request id that the x-request-id header gives back", async () => {
    type Line = { level: number; msg: string; reqId?: string; req?: { id: string; method: string; path: string }; res?: { statusCode: number }; code?: string };
    const linesOf = (id: string) => broker.logs.map((line) => JSON.parse(line) as Line).filter((line) => line.reqId === id);

    // A client cannot choose the id (it would let one forge another request's log lines): the broker makes one.
    const ok = await broker.http().get("/healthz?probe=1").set("x-request-id", "chosen-by-the-client");
    const refused = await broker.http().get("/metrics");
    expect(refused.status).toBe(401);
    const [okId, refusedId] = [ok.headers["x-request-id"] as string, refused.headers["x-request-id"] as string];
    for (const id of [okId, refusedId]) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(okId).not.toBe(refusedId);

    // "request completed" is written once the response is sent, which may be after the client has it.
    await vi.waitFor(() => expect(linesOf(refusedId).map((line) => line.msg)).toContain("request completed"));
    await vi.waitFor(() => expect(linesOf(okId).map((line) => line.msg)).toContain("request completed"));
    const okLines = linesOf(okId);
    expect(okLines.find((line) => line.msg === "request completed")!.req).toEqual({ id: okId, method: "GET", path: "/healthz" });
    expect(okLines.find((line) => line.msg === "request completed")!.res).toEqual({ statusCode: 200 });
    // What the handlers log about a request carries its id too, not only Fastify's own lines.
    const refusedLines = linesOf(refusedId);
    expect(refusedLines.map((line) => line.msg)).toEqual(["request refused", "request completed"]);
    expect(refusedLines[0]).toMatchObject({ code: refused.body.error.code, level: 30 });
    expect(refusedLines[1]!.res).toEqual({ statusCode: 401 });
    // The query string stays out of the logs.
    expect(broker.logs.join("\n")).not.toContain("probe=1");
    expect(broker.logs.join("\n")).not.toContain("chosen-by-the-client");
  });

  it("writes no line for a refused proxied call at info (its audit events are its record) unless KEYWARD_LOG_PROXY_CALLS=on", async () => {
    const proxiedCallLines = async (target: TestBroker) => {
      const res = await target.http().get("/proxy/made-up-upstream/v1/x");
      expect(res.status).toBe(401);
      // An API request made after it is logged once answered: by then the proxied call's line would be there too.
      const probe = await target.http().get("/healthz");
      const completed = () => target.logs.filter((line) => line.includes('"request completed"'));
      await vi.waitFor(() => expect(completed().join("\n")).toContain(probe.headers["x-request-id"]));
      return target.logs.filter((line) => line.includes(res.headers["x-request-id"] as string));
    };
    // Neither its refusal (logged at debug) nor its completion.
    expect(await proxiedCallLines(broker)).toEqual([]);
    const logging = await startBroker(store, { KEYWARD_LOG_PROXY_CALLS: "on" });
    try {
      // Its line carries the request's id as the binding every request's logger has (made lazily on the proxy).
      const lines = (await proxiedCallLines(logging)).map((line) => JSON.parse(line) as { msg: string; reqId?: string; req?: { id: string } });
      const completed = lines.find((line) => line.msg === "request completed");
      expect(completed?.reqId).toBeDefined();
      expect(completed?.reqId).toBe(completed?.req?.id);
    } finally {
      await logging.close();
    }
  });

  it("writes no line for a token issued (its token.issued event is its record) unless KEYWARD_LOG_TOKEN_ISSUANCE=on; a refused one is logged", async () => {
    await createUpstream(broker, { name: "logged-upstream", baseUrl: upstream.url, environment: "staging", secret: "real-key" });
    const agent = await createAgent(broker, "log-bot");
    await createGrant(broker, { name: "log-grant", agents: [agent.id], upstream: "logged-upstream", methods: ["GET"], paths: ["/v1/**"] });
    /** The request lines of each response, once an API request made after them has been logged. */
    const linesOf = async (target: TestBroker, ...responses: { headers: Record<string, unknown> }[]) => {
      const probe = await target.http().get("/healthz");
      await vi.waitFor(() => expect(target.logs.join("\n")).toContain(probe.headers["x-request-id"]));
      return responses.map((res) => target.logs.filter((line) => line.includes(res.headers["x-request-id"] as string)).map((line) => (JSON.parse(line) as { msg: string }).msg));
    };
    const requests = async (target: TestBroker) => {
      const issued = await issueToken(target, agent, { grant: "log-grant" });
      expect(issued.status).toBe(200);
      const oauth = await target.http().post("/oauth2/token").auth(agent.clientId, agent.clientSecret).type("form").send({ grant_type: "client_credentials", scope: "grant:log-grant" });
      expect(oauth.status).toBe(200);
      const refused = await issueToken(target, agent, { grant: "no-such-grant" });
      expect(refused.status).toBe(404);
      return linesOf(target, issued, oauth, refused);
    };
    const [issued, oauth, refused] = await requests(broker);
    expect(issued).toEqual([]);
    expect(oauth).toEqual([]);
    expect(refused).toContain("request completed");
    const logging = await startBroker(store, { KEYWARD_LOG_TOKEN_ISSUANCE: "on" });
    try {
      const [issuedOn, oauthOn] = await requests(logging);
      expect(issuedOn).toContain("request completed");
      expect(oauthOn).toContain("request completed");
    } finally {
      await logging.close();
    }
  });
});
