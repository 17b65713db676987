import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startGraphqlUpstream } from "../helpers/graphql-upstream.js";
import { basic, createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const SECRET = "railway-production-key-" + "p".repeat(24);

/** Break-glass: a token for a protected operation in production waits for a human, and is handed out once. */
describe("human approval", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startGraphqlUpstream>>;
  let webhook: Server;
  const webhookCalls: { headers: Record<string, unknown>; body: Record<string, unknown> }[] = [];
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let otherAgent: Awaited<ReturnType<typeof createAgent>>;
  let security: { id: string; key: string };
  let auditorKey: string;

  beforeAll(async () => {
    webhook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        webhookCalls.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
    upstream = await startGraphqlUpstream();
    store = newStore();
    broker = await startBroker(store, { KEYWARD_APPROVAL_WEBHOOK_URL: `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hooks/approvals` });
    await createUpstream(broker, { name: "railway-prod", baseUrl: upstream.url, environment: "production", secret: SECRET, protocol: "graphql", presets: ["railway"] });
    // Registered with the bootstrap admin key, which therefore holds the agent's client secret.
    agent = await createAgent(broker, "ops-agent");
    otherAgent = await createAgent(broker, "other-agent");
    await createGrant(broker, {
      name: "break-glass",
      agents: [agent.id, otherAgent.id],
      upstream: "railway-prod",
      methods: ["POST"],
      paths: ["/graphql"],
      graphql: { allow: [{ operation: "query" }, { operation: "mutation", field: "volumeDelete", destructive: true }] },
      allowProtected: ["railway.volumeDelete"],
      maxTtlSeconds: 600,
    });
    const created = await broker.admin("post", "/v1/admin-keys", { name: "on-call", role: "security" });
    security = { id: created.body.id, key: created.body.key };
    auditorKey = (await broker.admin("post", "/v1/admin-keys", { name: "auditor", role: "auditor" })).body.key;
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await new Promise((resolve) => webhook?.close(resolve));
    await store?.drop();
  });

  const as = (key: string, path: string, body: object = {}) => broker.http().post(path).set("authorization", `Bearer ${key}`).send(body);
  const poll = (id: string, who = agent) => broker.http().get(`/v1/approvals/${id}`).set("authorization", basic(who.clientId, who.clientSecret));
  const requestToken = async (body: Record<string, unknown> = { grant: "break-glass", ttlSeconds: 300 }) => {
    const res = await issueToken(broker, agent, body);
    expect(res.status).toBe(202);
    return res.body as { status: string; approvalId: string; expiresAt: string };
  };

  let approvalId: string;
  let token: string;

  it("POST /v1/tokens answers 202 with an approval id instead of a token", async () => {
    const held = await requestToken();
    expect(held).toEqual({ status: "pending", approvalId: expect.any(String), expiresAt: expect.any(String) });
    expect(held).not.toHaveProperty("access_token");
    approvalId = held.approvalId;
  });

  it("the agent polls with its client credentials, and only it", async () => {
    const res = await poll(approvalId);
    expect(res.status).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.body).toMatchObject({ approvalId, status: "pending", capabilities: { methods: ["POST"], paths: ["/graphql"], ttlSeconds: 300 } });
    expect(res.body).not.toHaveProperty("token");
    expect((await poll(approvalId, otherAgent)).status).toBe(404);
    expect((await broker.http().get(`/v1/approvals/${approvalId}`)).status).toBe(401);
    expect((await broker.http().get(`/v1/approvals/${approvalId}`).set("authorization", basic(agent.clientId, "kws_wrong"))).status).toBe(401);
  });

  it("posts the request to the approval webhook, with no secret in it", async () => {
    await expect.poll(() => webhookCalls.length).toBeGreaterThan(0);
    const call = webhookCalls[0]!;
    expect(call.headers["content-type"]).toBe("application/json");
    expect(call.body).toMatchObject({
      event: "approval.requested",
      approvalId,
      agent: { id: agent.id, name: "ops-agent" },
      grant: { name: "break-glass" },
      upstream: "railway-prod",
      environment: "production",
      protectedOperations: ["railway.volumeDelete"],
      approve: `POST /v1/approvals/${approvalId}/approve`,
    });
    expect(call.body.reasons).toEqual(["the grant names protected operations: railway.volumeDelete"]);
    expect(JSON.stringify(call.body)).not.toContain(SECRET);
    expect(JSON.stringify(call.body)).not.toContain(agent.clientSecret);
  });

  it("the requester cannot approve its own request: the admin key that holds the agent's secret is refused", async () => {
    const res = await as(broker.adminKey, `/v1/approvals/${approvalId}/approve`);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("self_approval");
  });

  it("nor may an admin key that was later given the agent's secret by rotating it", async () => {
    const rotator = (await broker.admin("post", "/v1/admin-keys", { name: "rotator", role: "admin" })).body as { id: string; key: string };
    const rotated = await as(rotator.key, `/v1/agents/${otherAgent.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    const rotatedAgent = { ...otherAgent, clientSecret: rotated.body.clientSecret as string };
    const held = await issueToken(broker, rotatedAgent, { grant: "break-glass" });
    expect(held.status).toBe(202);
    const res = await as(rotator.key, `/v1/approvals/${held.body.approvalId}/approve`);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("self_approval");
    expect((await as(rotator.key, `/v1/approvals/${held.body.approvalId}/deny`)).status).toBe(200);
  });

  it("an auditor may not decide; an agent token or no key is not an admin key", async () => {
    expect((await as(auditorKey, `/v1/approvals/${approvalId}/approve`)).status).toBe(403);
    expect((await broker.http().post(`/v1/approvals/${approvalId}/approve`).send({})).status).toBe(401);
  });

  it("a security key lists pending requests and approves, recorded with its id", async () => {
    const list = await broker.http().get("/v1/approvals?status=pending").set("authorization", `Bearer ${security.key}`);
    expect(list.status).toBe(200);
    expect(list.body.approvals.map((a: { approvalId: string }) => a.approvalId)).toContain(approvalId);
    const res = await as(security.key, `/v1/approvals/${approvalId}/approve`, { note: "restore drill, ticket OPS-42" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "approved", decidedBy: `admin-key:${security.id}`, note: "restore drill, ticket OPS-42" });
    expect((await as(security.key, `/v1/approvals/${approvalId}/approve`)).status).toBe(409);
    expect((await as(security.key, `/v1/approvals/${approvalId}/deny`)).status).toBe(409);
  });

  it("the agent's next poll gets the token, exactly once", async () => {
    const first = await poll(approvalId);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ status: "issued", token: { token_type: "Bearer", expires_in: 300, access_token: expect.any(String) } });
    token = first.body.token.access_token;
    const second = await poll(approvalId);
    expect(second.body.status).toBe("issued");
    expect(second.body).not.toHaveProperty("token");
  });

  it("the approved token may run the protected operation the grant names", async () => {
    const res = await broker
      .http()
      .post("/proxy/railway-prod/graphql")
      .set("authorization", `Bearer ${token}`)
      .set("content-type", "application/json")
      .send(JSON.stringify({ query: 'mutation { volumeDelete(volumeId: "vol-1") }' }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { volumeDelete: true } });
    expect(upstream.state.volumes).toEqual([]);
  });

  it("concurrent polls of one approval hand out one token", async () => {
    const { approvalId: id } = await requestToken();
    await as(security.key, `/v1/approvals/${id}/approve`).expect(200);
    const polls = await Promise.all(Array.from({ length: 6 }, () => poll(id)));
    expect(polls.every((p) => p.status === 200)).toBe(true);
    expect(polls.filter((p) => p.body.token).length).toBe(1);
    // A reader of the log first waits for this broker's own events (and the token records they carry).
    expect((await broker.admin("get", "/v1/audit?limit=1")).status).toBe(200);
    const issued = await broker.keyward.db.prisma.issuedToken.count({ where: { agentId: agent.id } });
    expect(issued).toBe(2);
  });

  it("a denied request never yields a token", async () => {
    const { approvalId: id } = await requestToken();
    const res = await as(security.key, `/v1/approvals/${id}/deny`, { note: "not during the freeze" });
    expect(res.body).toMatchObject({ status: "denied" });
    const polled = await poll(id);
    expect(polled.body).toMatchObject({ status: "denied" });
    expect(polled.body).not.toHaveProperty("token");
    expect((await as(security.key, `/v1/approvals/${id}/approve`)).status).toBe(409);
  });

  it("approvals expire: undecided, or decided but not collected in time", async () => {
    const { approvalId: undecided } = await requestToken();
    // Another request (the same one again, while it waits, would be the same held request).
    const { approvalId: uncollected } = await requestToken({ grant: "break-glass", ttlSeconds: 240 });
    expect(uncollected).not.toBe(undecided);
    await as(security.key, `/v1/approvals/${uncollected}/approve`).expect(200);
    await broker.keyward.db.prisma.approval.updateMany({ where: { id: { in: [undecided, uncollected] } }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await poll(undecided)).body.status).toBe("expired");
    expect((await as(security.key, `/v1/approvals/${undecided}/approve`)).status).toBe(409);
    const late = await poll(uncollected);
    expect(late.body.status).toBe("expired");
    expect(late.body).not.toHaveProperty("token");
  });

  it("an environment marked requiresApproval holds every token for it; older tokens stop working", async () => {
    await createUpstream(broker, { name: "billing-prod", baseUrl: upstream.url, environment: "billing-production", secret: SECRET });
    await createGrant(broker, { name: "billing-read", agents: [agent.id], upstream: "billing-prod", methods: ["POST"], paths: ["/graphql"] });
    const before = await tokenFor(broker, agent, { grant: "billing-read" });
    const query = JSON.stringify({ query: "{ services { id } }" });
    const callWith = (t: string) =>
      broker.http().post("/proxy/billing-prod/graphql").set("authorization", `Bearer ${t}`).set("content-type", "application/json").send(query);
    await callWith(before).expect(200);

    const marked = await broker.admin("put", "/v1/environments/billing-production", { requiresApproval: true });
    expect(marked.body).toEqual({ name: "billing-production", requiresApproval: true });
    const envs = await broker.admin("get", "/v1/environments");
    expect(envs.body.environments).toContainEqual({ name: "billing-production", requiresApproval: true, upstreams: ["billing-prod"] });

    const denied = await callWith(before);
    expect(denied.status).toBe(403);
    expect(denied.body.error.reason).toBe("environment billing-production requires a token approved by a human");
    const held = await issueToken(broker, agent, { grant: "billing-read" });
    expect(held.status).toBe(202);
    await as(security.key, `/v1/approvals/${held.body.approvalId}/approve`).expect(200);
    const approvedToken = (await poll(held.body.approvalId)).body.token.access_token;
    await callWith(approvedToken).expect(200);
  });

  it("a grant that does not cover the upstream's environment gets no token", async () => {
    // Covers the upstream's environment when written (the default), until the upstream moves.
    await createGrant(broker, { name: "billing-as-it-was", agents: [agent.id], upstream: "billing-prod", methods: ["POST"], paths: ["/graphql"] });
    expect((await broker.admin("patch", "/v1/upstreams/billing-prod", { environment: "billing-production2" })).status).toBe(200);
    const res = await issueToken(broker, agent, { grant: "billing-as-it-was" });
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({ code: "environment_not_granted", reason: "the grant does not cover environment billing-production2" });
  });

  it("a GraphQL allow rule marked requiresApproval: an unapproved token may not use it, a token for the grant waits for a human", async () => {
    await createUpstream(broker, { name: "railway-staging", baseUrl: upstream.url, environment: "staging", secret: SECRET, protocol: "graphql", presets: [] });
    const rules = (deployNeedsApproval: boolean) => ({
      allow: [{ operation: "query" }, { operation: "mutation", field: "serviceCreate", requiresApproval: deployNeedsApproval }],
    });
    const grant = await createGrant(broker, {
      name: "deploy-staging",
      agents: [agent.id],
      upstream: "railway-staging",
      methods: ["POST"],
      paths: ["/graphql"],
      graphql: rules(false),
    });
    const call = (t: string, body: unknown) =>
      broker.http().post("/proxy/railway-staging/graphql").set("authorization", `Bearer ${t}`).set("content-type", "application/json").send(JSON.stringify(body));
    const list = { query: "{ services { name } }" };
    const deploy = (name: string) => ({ query: `mutation { serviceCreate(name: "${name}") { name } }` });
    const deployed = () => upstream.state.services.map((s) => s.name);

    // Issued while no rule needed approval. The rule is then marked: edits narrow live tokens at once.
    const unapproved = await tokenFor(broker, agent, { grant: "deploy-staging" });
    await call(unapproved, deploy("before-marking")).expect(200);
    const patched = await broker.admin("patch", `/v1/grants/${grant.id}`, { graphql: rules(true) });
    expect(patched.status).toBe(200);

    // What the unapproved token can still do: the rules that need no approval.
    const listed = await call(unapproved, list);
    expect(listed.status).toBe(200);
    expect(listed.body.data.services.map((s: { name: string }) => s.name)).toContain("before-marking");
    // What it cannot: the marked rule, alone, aliased or in a batch, never reaching the upstream.
    const forwarded = upstream.received.length;
    for (const body of [deploy("unapproved"), { query: 'mutation { x: serviceCreate(name: "aliased") { name } }' }, [list, deploy("batched")]]) {
      const res = await call(unapproved, body);
      expect(res.status, JSON.stringify(body)).toBe(403);
      // A GraphQL refusal (src/proxy/refusals.ts): the Keyward code and reason in the error's extensions.
      expect(res.body.errors[0].extensions).toMatchObject({ code: "approval_required", reason: "graphql.allow[1] requires a token approved by a human" });
    }
    // Nor anything no rule allows (that is no matter of approval).
    const wipe = await call(unapproved, { query: 'mutation { volumeDelete(volumeId: "vol-1") }' });
    expect(wipe.status).toBe(403);
    expect(wipe.body.errors[0].extensions.reason).toMatch(/^no graphql\.allow rule matches .*volumeDelete/);
    expect(upstream.received.length).toBe(forwarded);
    expect(deployed()).not.toContain("unapproved");

    // A new token for the grant is held for a human, whichever rule the agent means to use.
    const held = await issueToken(broker, agent, { grant: "deploy-staging", ttlSeconds: 300 });
    expect(held.status).toBe(202);
    expect(held.body).toEqual({ status: "pending", approvalId: expect.any(String), expiresAt: expect.any(String) });
    expect(held.body).not.toHaveProperty("access_token");
    const pending = await poll(held.body.approvalId);
    expect(pending.body).toMatchObject({ status: "pending", reasons: ["graphql.allow[1] requires approval"], upstream: "railway-staging", environment: "staging" });

    await as(security.key, `/v1/approvals/${held.body.approvalId}/approve`, { note: "staging deploy" }).expect(200);
    const collected = await poll(held.body.approvalId);
    expect(collected.body).toMatchObject({ status: "issued", token: { access_token: expect.any(String) } });
    const approved = collected.body.token.access_token as string;

    const created = await call(approved, deploy("approved"));
    expect(created.status).toBe(200);
    expect(created.body).toEqual({ data: { serviceCreate: { name: "approved" } } });
    expect(deployed()).toContain("approved");
    await call(approved, list).expect(200);
    // Approval lifts the rule's hold, not the grant's limits.
    const stillDenied = await call(approved, { query: 'mutation { volumeDelete(volumeId: "vol-1") }' });
    expect(stillDenied.status).toBe(403);
    expect(stillDenied.body.errors[0].extensions.reason).toMatch(/^no graphql\.allow rule matches .*volumeDelete/);
  });

  it("an HTTP rule in requiresApprovalFor: only an approved token may make those calls, and tokens for the grant wait for a human", async () => {
    const api = await startUpstream();
    try {
      await createUpstream(broker, { name: "hosting-prod", baseUrl: api.url, environment: "hosting", secret: SECRET });
      const grant = await createGrant(broker, { name: "hosting-ops", agents: [agent.id], upstream: "hosting-prod", methods: ["GET", "DELETE"], paths: ["/v1/**"] });
      const call = (t: string, method: "get" | "delete", path: string) => broker.http()[method](`/proxy/hosting-prod${path}`).set("authorization", `Bearer ${t}`);
      const unapproved = await tokenFor(broker, agent, { grant: "hosting-ops" });
      await call(unapproved, "delete", "/v1/volumes/vol-1").expect(200);

      const patched = await broker.admin("patch", `/v1/grants/${grant.id}`, { requiresApprovalFor: [{ method: "DELETE", path: "/v1/volumes/**" }] });
      expect(patched.body.requiresApprovalFor).toEqual([{ method: "DELETE", path: "/v1/volumes/**" }]);
      const forwarded = api.received.length;
      const refused = await call(unapproved, "delete", "/v1/volumes/vol-2");
      expect(refused.status).toBe(403);
      expect(refused.body.error.reason).toBe("requiresApprovalFor[0] requires a token approved by a human");
      expect(api.received.length).toBe(forwarded);
      // Other calls the grant allows need no approval.
      await call(unapproved, "get", "/v1/volumes").expect(200);
      await call(unapproved, "delete", "/v1/caches/c-1").expect(200);

      const held = await issueToken(broker, agent, { grant: "hosting-ops" });
      expect(held.status).toBe(202);
      expect((await poll(held.body.approvalId)).body.reasons).toEqual(["requiresApprovalFor[0] (DELETE /v1/volumes/**) requires approval"]);
      await as(security.key, `/v1/approvals/${held.body.approvalId}/approve`).expect(200);
      const approved = (await poll(held.body.approvalId)).body.token.access_token as string;
      await call(approved, "delete", "/v1/volumes/vol-2").expect(200);
      expect(api.received.at(-1)).toMatchObject({ method: "DELETE", url: "/v1/volumes/vol-2" });
    } finally {
      await api.close();
    }
  });

  it("lists a waiting request however many newer ones were decided since", async () => {
    const { approvalId: waiting } = await requestToken({ grant: "break-glass", ttlSeconds: 120 });
    const { prisma } = broker.keyward.db;
    const template = await prisma.approval.findUniqueOrThrow({ where: { id: waiting } });
    const later = Date.now() + 1000;
    await prisma.approval.createMany({
      data: Array.from({ length: 600 }, (_, i) => ({
        ...template,
        id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
        capabilities: template.capabilities as object,
        status: "issued",
        createdAt: new Date(later + i),
      })),
    });
    try {
      const list = async (status: string) =>
        ((await broker.http().get(`/v1/approvals?status=${status}`).set("authorization", `Bearer ${security.key}`)).body.approvals as { approvalId: string; status: string }[]);
      const pending = await list("pending");
      expect(pending.map((a) => a.approvalId)).toContain(waiting);
      expect(pending.every((a) => a.status === "pending")).toBe(true);
      // Expired ones are those of the stored statuses that can expire, past their time.
      await prisma.approval.update({ where: { id: waiting }, data: { expiresAt: new Date(Date.now() - 1000) } });
      expect((await list("pending")).map((a) => a.approvalId)).not.toContain(waiting);
      const expired = await list("expired");
      expect(expired.map((a) => a.approvalId)).toContain(waiting);
      expect(expired.every((a) => a.status === "expired")).toBe(true);
    } finally {
      await prisma.approval.deleteMany({ where: { id: { startsWith: "00000000-0000-4000-8000-" } } });
    }
  });

  it("audits every step with its actor", async () => {
    const res = await broker.admin("get", "/v1/audit?limit=500");
    const events = res.body.events as { kind: string; actor: string; decision: string | null; details: { approvalId?: string } }[];
    const forFirst = events.filter((e) => e.details?.approvalId === approvalId).map((e) => [e.kind, e.actor, e.decision]);
    expect(forFirst).toEqual(
      expect.arrayContaining([
        ["approval.requested", `agent:${agent.id}`, null],
        ["approval.notified", "keyward", "allow"],
        ["approval.decided", `admin-key:${security.id}`, "allow"],
        ["approval.collected", `agent:${agent.id}`, null],
      ]),
    );
    expect(events.some((e) => e.kind === "approval.decided" && e.decision === "deny")).toBe(true);
    expect(res.text).not.toContain(token);
  });
});
