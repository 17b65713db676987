import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Denied, Keyward, KeywardApiError, NeedsApproval, Revoked } from "../../src/sdk/index.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("agent SDK", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  /** Where an upstream's redirect points: a host that is no upstream of the broker. */
  let elsewhere: Awaited<ReturnType<typeof startUpstream>>;
  let agent: { id: string; clientId: string; clientSecret: string };
  let approver: string;

  beforeAll(async () => {
    store = newStore();
    broker = await startBroker(store);
    elsewhere = await startUpstream();
    upstream = await startUpstream((req, res) => {
      if (req.url === "/v1/moved") return void res.writeHead(307, { location: `${elsewhere.url}/v1/moved` }).end();
      // An upstream refusal shaped like Keyward's, even claiming to be the broker's: still the upstream's answer.
      if (req.url === "/v1/forbidden") {
        res.writeHead(403, { "content-type": "application/json", "keyward-error": "forbidden" });
        return res.end(JSON.stringify({ error: { code: "forbidden", message: "request denied" } }));
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ url: req.url, method: req.method }));
    });
    await createUpstream(broker, { name: "hosting-staging", baseUrl: upstream.url, environment: "staging", secret: "real-staging-key" });
    agent = await createAgent(broker, "deploy-bot");
    await createGrant(broker, { name: "deploy-staging", agents: [agent.id], upstream: "hosting-staging", methods: ["GET", "POST"], paths: ["/v1/**"], deny: [{ method: "DELETE" }] });
    await createGrant(broker, { name: "prod-deploy", agents: [agent.id], upstream: "hosting-staging", methods: ["GET"], paths: ["/v1/**"], requiresApproval: true });
    // The admin key that registered the agent held its secret, so it may not approve: another human does.
    approver = (await broker.admin("post", "/v1/admin-keys", { name: "on-call", role: "security" })).body.key;
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await elsewhere?.close();
    await store?.drop();
  });

  const connect = (options: { refreshMarginSeconds?: number } = {}) =>
    Keyward.connect({ url: broker.url, clientId: agent.clientId, clientSecret: agent.clientSecret, ...options });
  const approvals = async () => (await broker.http().get("/v1/approvals?status=pending").set("authorization", `Bearer ${approver}`)).body.approvals;
  const decide = (id: string, verdict: "approve" | "deny") =>
    broker.http().post(`/v1/approvals/${id}/${verdict}`).set("authorization", `Bearer ${approver}`).send({ note: "checked" });

  it("gets a token and calls through the proxy; the upstream sees only the real key", async () => {
    const kw = await connect();
    const token = await kw.token({ grant: "deploy-staging" });
    expect(token).toMatchObject({ upstream: "hosting-staging", grant: "deploy-staging", scope: "hosting-staging:GET hosting-staging:POST" });
    expect(token.expiresAt.getTime()).toBeGreaterThan(Date.now() + 800_000);
    expect((await kw.token({ grant: "deploy-staging" })).jti).toBe(token.jti); // held while fresh

    const res = await kw.fetch("hosting-staging", "/v1/projects?limit=2", { method: "POST", body: '{"name":"x"}', headers: { "content-type": "application/json" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ url: "/v1/projects?limit=2", method: "POST" });
    const seen = upstream.received.at(-1)!;
    expect(seen.headers.authorization).toBe("Bearer real-staging-key");
    expect(seen.body).toBe('{"name":"x"}');
  });

  it("sends a path that resolves out of the upstream's proxy nowhere (an MCP tool's path of dot segments)", async () => {
    const kw = await connect();
    await kw.token({ grant: "deploy-staging" });
    const received = upstream.received.length;
    for (const path of ["/../../v1/forward-proxy/env", "/%2e%2e/%2E%2E/v1/whoami", "/v1/../../../oauth2/introspect"]) {
      // Before: resolved by the URL parser to /v1/forward-proxy/env and sent there with the upstream's token.
      await expect(kw.fetch("hosting-staging", path)).rejects.toThrow(TypeError);
    }
    // Dot segments that stay under the upstream's proxy are the upstream's to resolve.
    expect((await kw.fetch("hosting-staging", "/v1/a/../projects")).status).toBe(200);
    expect(upstream.received.length).toBe(received + 1);
  });

  it("hands an upstream's redirect back instead of sending the call where it points", async () => {
    const kw = await connect();
    await kw.token({ grant: "deploy-staging" });
    const res = await kw.fetch("hosting-staging", "/v1/moved", { method: "POST", body: '{"deploy":"prod"}', headers: { "content-type": "application/json" } });
    // Before: fetch followed the 307, POSTing the body to the other host, outside the broker.
    expect(res.status).toBe(307);
    expect(res.headers.get("location")).toBe(`${elsewhere.url}/v1/moved`);
    expect(elsewhere.received).toHaveLength(0);
  });

  it("refreshes a token before it expires", async () => {
    const kw = await connect({ refreshMarginSeconds: 59 });
    const first = await kw.token({ grant: "deploy-staging", ttlSeconds: 60 });
    await sleep(1_200);
    expect((await kw.fetch("hosting-staging", "/v1/projects")).status).toBe(200);
    const second = await kw.token({ grant: "deploy-staging", ttlSeconds: 60 });
    expect(second.jti).not.toBe(first.jti);
    const { events } = (await broker.admin("get", "/v1/audit?kind=proxy&limit=1")).body;
    expect(events[0].jti).toBe(second.jti); // the call went out with the new token
  });

  it("throws Denied for the broker's refusals, and hands the upstream's own errors back", async () => {
    const kw = await connect();
    await kw.token({ grant: "deploy-staging" });
    const denied = await kw.fetch("hosting-staging", "/v1/volumes/vol-1", { method: "DELETE" }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(Denied);
    expect(denied).toMatchObject({ status: 403, code: "method_not_granted", reason: expect.stringMatching(/DELETE/) });

    const upstreamRefusal = await kw.fetch("hosting-staging", "/v1/forbidden");
    expect(upstreamRefusal.status).toBe(403);
    expect(upstreamRefusal.headers.get("keyward-error")).toBeNull();

    await expect(kw.token({ grant: "deploy-staging", methods: ["DELETE"] })).rejects.toMatchObject({ name: "Denied", code: "widening_refused" });
    const unknown = await kw.token({ grant: "no-such-grant" }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(KeywardApiError);
    expect(unknown).toMatchObject({ status: 404, code: "not_found" });
    await expect(kw.fetch("elsewhere", "/x")).rejects.toMatchObject({ code: "no_token" });
    await expect(kw.proxyFetch("http://attacker.example/proxy/hosting-staging/v1")).rejects.toThrow(TypeError);
    const wrong = Keyward.connect({ url: broker.url, clientId: agent.clientId, clientSecret: "kws_wrong" });
    await expect((await wrong).token({ grant: "deploy-staging" })).rejects.toMatchObject({ status: 401, code: "invalid_client" });
  });

  it("NeedsApproval: asking again polls the same approval; waiting returns the token once a human approves", async () => {
    const kw = await connect();
    const pending = await kw.token({ grant: "prod-deploy" }).catch((e: unknown) => e);
    expect(pending).toBeInstanceOf(NeedsApproval);
    const { approvalId } = pending as NeedsApproval;
    await expect(kw.token({ grant: "prod-deploy" })).rejects.toMatchObject({ approvalId });
    expect((await approvals()).map((a: { approvalId: string }) => a.approvalId)).toEqual([approvalId]); // no second request

    expect((await decide(approvalId, "approve")).status).toBe(200);
    const token = await kw.token({ grant: "prod-deploy" });
    expect(token.upstream).toBe("hosting-staging");
    expect((await kw.fetch("hosting-staging", "/v1/status")).status).toBe(200);

    // Waiting: the SDK polls until someone decides.
    const waiting = kw.token({ grant: "prod-deploy", ttlSeconds: 300 }, { waitForApproval: { pollIntervalMs: 100, timeoutMs: 20_000 } });
    let held: { approvalId: string }[] = [];
    while (held.length === 0) held = await approvals();
    await decide(held[0]!.approvalId, "approve");
    expect((await waiting).jti).not.toBe(token.jti);

    // A denial is Denied.
    const refused = kw.token({ grant: "prod-deploy", ttlSeconds: 200 }, { waitForApproval: { pollIntervalMs: 100 } });
    held = [];
    while (held.length === 0) held = await approvals();
    await decide(held[0]!.approvalId, "deny");
    await expect(refused).rejects.toMatchObject({ name: "Denied", code: "approval_denied", reason: "checked" });
  });

  // Last: the agent revocation would also catch tokens issued within the same second.
  it("throws Revoked once the agent's tokens are revoked or frozen", async () => {
    const kw = await connect();
    await kw.token({ grant: "deploy-staging" });
    await broker.admin("post", "/v1/kill-switch", { reason: "drill" });
    await expect(kw.fetch("hosting-staging", "/v1/projects")).rejects.toMatchObject({ name: "Revoked", code: "kill_switch_engaged" });
    await broker.admin("delete", "/v1/kill-switch", {});
    expect((await kw.fetch("hosting-staging", "/v1/projects")).status).toBe(200);

    await broker.admin("post", "/v1/revocations", { agentId: agent.id, reason: "task finished" });
    const revoked = await kw.fetch("hosting-staging", "/v1/projects").catch((e: unknown) => e);
    expect(revoked).toBeInstanceOf(Revoked);
    expect(revoked).toMatchObject({ status: 401, code: "token_revoked" });
  });

  it("fails early on a broker that is not there", async () => {
    await expect(Keyward.connect({ url: "http://127.0.0.1:1", clientId: "x", clientSecret: "y" })).rejects.toMatchObject({ code: "unreachable" });
  });
});
