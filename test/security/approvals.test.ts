import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveCheckpointKey, type CheckpointKeys } from "../../src/audit/chain.js";
import { pruneAudit } from "../../src/audit/retention.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { ACCESS_TOKEN_TYPE, claimsOf, postForm, TOKEN_EXCHANGE } from "../helpers/oauth.js";
import { basic, createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { statusOf, title } from "./cases.js";
import { Approvals, CLAIM_LEASE_MS } from "../../src/approvals/approvals.js";
import { waitFor } from "../helpers/wait.js";

/** Break-glass approvals attacked by the people and agents around them (src/approvals). */
describe("approvals", () => {
  let store: Store;
  let broker: TestBroker;
  let api: Awaited<ReturnType<typeof startUpstream>>;
  let security: string;

  beforeAll(async () => {
    api = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "prod", baseUrl: api.url, environment: "production", secret: "sk-prod-" + "p".repeat(24) });
    security = (await broker.admin("post", "/v1/admin-keys", { name: "on-call", role: "security" })).body.key;
  });
  afterAll(async () => {
    await broker?.close();
    await api?.close();
    await store?.drop();
  });

  const as = (key: string, path: string, body: object = {}) => broker.http().post(path).set("authorization", `Bearer ${key}`).send(body);
  const newAdmin = async (name: string) => (await broker.admin("post", "/v1/admin-keys", { name, role: "admin" })).body as { id: string; key: string };
  const collect = (id: string, agent: { clientId: string; clientSecret: string }) =>
    broker.http().get(`/v1/approvals/${id}`).set("authorization", basic(agent.clientId, agent.clientSecret));
  /** An agent registered by `admin`, in a grant whose every token needs a human, with one request held. */
  const heldRequest = async (admin: { key: string }, name: string) => {
    const res = await broker.http().post("/v1/agents").set("authorization", `Bearer ${admin.key}`).send({ name });
    expect(res.status).toBe(201);
    const agent = res.body as { id: string; clientId: string; clientSecret: string };
    await createGrant(broker, { name: `${name}-grant`, agents: [agent.id], upstream: "prod", methods: ["GET"], paths: ["/**"], requiresApproval: true });
    const held = await issueToken(broker, agent, { grant: `${name}-grant` });
    expect(held.status).toBe(202);
    return { agent, approvalId: held.body.approvalId as string };
  };

  describe(title("ADM-20"), () => {
    it("an admin key given the agent's secret after the request was held (rotation) cannot approve it", async () => {
      const rotator = await newAdmin("rotator");
      const { agent, approvalId } = await heldRequest({ key: broker.adminKey }, "rotated-after-hold");
      const rotated = await as(rotator.key, `/v1/agents/${agent.id}/rotate-secret`);
      expect(rotated.status).toBe(200);
      const res = await as(rotator.key, `/v1/approvals/${approvalId}/approve`);
      expect(res.status).toBe(statusOf("ADM-20"));
      expect(res.body.error.code).toBe("self_approval");
      const polled = await collect(approvalId, { ...agent, clientSecret: rotated.body.clientSecret });
      expect(polled.body).toMatchObject({ status: "pending" });
      expect(polled.body).not.toHaveProperty("token");
    });

    it("nor one that registered the agent's signing keys after the request was held", async () => {
      const keySetter = await newAdmin("key-setter");
      const { agent, approvalId } = await heldRequest({ key: broker.adminKey }, "jwks-after-hold");
      const jwk = { kty: "EC", crv: "P-256", kid: "k1", alg: "ES256", x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" };
      expect((await broker.http().put(`/v1/agents/${agent.id}/jwks`).set("authorization", `Bearer ${keySetter.key}`).send({ keys: [jwk] })).status).toBe(200);
      const res = await as(keySetter.key, `/v1/approvals/${approvalId}/approve`);
      expect(res.status).toBe(statusOf("ADM-20"));
      expect(res.body.error.code).toBe("self_approval");
    });

    it("an approver who takes the agent's secret after approving collects no token with it", async () => {
      const approver = await newAdmin("approver-then-rotator");
      const { agent, approvalId } = await heldRequest({ key: broker.adminKey }, "rotated-after-approval");
      expect((await as(approver.key, `/v1/approvals/${approvalId}/approve`)).status).toBe(200);
      const rotated = await as(approver.key, `/v1/agents/${agent.id}/rotate-secret`);
      expect(rotated.status).toBe(200);
      const polled = await collect(approvalId, { ...agent, clientSecret: rotated.body.clientSecret });
      expect(polled.status).toBe(statusOf("ADM-20"));
      expect(polled.body.error.code).toBe("self_approval");
      expect(polled.body).not.toHaveProperty("token");
      expect(await broker.keyward.db.prisma.issuedToken.count({ where: { agentId: agent.id } })).toBe(0);
    });

    it("the admin key that registered the agent cannot approve once audit retention has pruned the registration", async () => {
      const registrar = await newAdmin("registrar");
      const res = await broker.http().post("/v1/agents").set("authorization", `Bearer ${registrar.key}`).send({ name: "registered-long-ago" });
      const agent = res.body as { id: string; clientId: string; clientSecret: string };
      await createGrant(broker, { name: "long-ago-grant", agents: [agent.id], upstream: "prod", methods: ["GET"], paths: ["/**"], requiresApproval: true });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const keys: CheckpointKeys = [deriveCheckpointKey(Buffer.from(store.masterKey, "base64"))];
      const pruned = await pruneAudit(broker.keyward.db.prisma, keys, { olderThan: new Date(), keepUnshipped: false, actor: "test" });
      expect(pruned.refused).toBeNull();
      expect(pruned.prunedEvents).toBeGreaterThan(0);
      const held = await issueToken(broker, agent, { grant: "long-ago-grant" });
      expect(held.status).toBe(202);
      const approved = await as(registrar.key, `/v1/approvals/${held.body.approvalId}/approve`);
      expect(approved.status).toBe(statusOf("ADM-20"));
      expect(approved.body.error.code).toBe("self_approval");
      // Someone who never held the agent's credentials still may.
      expect((await as(security, `/v1/approvals/${held.body.approvalId}/approve`)).status).toBe(200);
      expect((await collect(held.body.approvalId, agent)).body).toMatchObject({ status: "issued", token: { access_token: expect.any(String) } });
    });
  });

  it(title("ADM-21"), async () => {
    const approver = (await broker.admin("post", "/v1/admin-keys", { name: "stolen-approver", role: "security" })).body as { id: string; key: string };
    const { agent, approvalId } = await heldRequest({ key: broker.adminKey }, "approved-by-stolen-key");
    expect((await as(approver.key, `/v1/approvals/${approvalId}/approve`)).status).toBe(200);
    // The key turns out to be stolen: revoking it takes back what it approved and was not collected yet.
    expect((await broker.admin("delete", `/v1/admin-keys/${approver.id}`)).status).toBe(204);
    const collected = await collect(approvalId, agent);
    expect(collected.status).toBe(statusOf("ADM-21"));
    expect(collected.body.error).toMatchObject({ code: "approval_invalid", reason: expect.stringContaining("revoked") });
    expect(collected.body).not.toHaveProperty("token");
    expect(await broker.keyward.db.prisma.issuedToken.count({ where: { agentId: agent.id } })).toBe(0);
    // The refused collection is in the audit log, as any refused token request.
    const audit = await broker.admin("get", `/v1/audit?kind=token.refused&agentId=${agent.id}`);
    expect(audit.body.events).toEqual([
      expect.objectContaining({ reason: "approval_invalid", decision: "deny", details: expect.objectContaining({ reason: "the admin key that approved it has been revoked" }) }),
    ]);
  });

  it(title("TOK-33"), async () => {
    await createUpstream(broker, { name: "staging-api", baseUrl: api.url, environment: "staging", secret: "sk-staging-" + "s".repeat(24) });
    const agent = await createAgent(broker, "mover");
    const grant = await createGrant(broker, {
      name: "mover-grant",
      agents: [agent.id],
      upstream: "staging-api",
      environments: ["staging", "production"],
      methods: ["GET"],
      paths: ["/**"],
      requiresApproval: true,
    });
    const held = await issueToken(broker, agent, { grant: "mover-grant" });
    expect(held.status).toBe(202);
    const approved = await as(security, `/v1/approvals/${held.body.approvalId}/approve`);
    expect(approved.body).toMatchObject({ status: "approved", upstream: "staging-api", environment: "staging" });

    // The grant moves to production before the agent collects: what the human approved is not what it would get.
    expect((await broker.admin("patch", `/v1/grants/${grant.id}`, { upstream: "prod" })).status).toBe(200);
    const moved = await collect(held.body.approvalId, agent);
    expect(moved.status).toBe(statusOf("TOK-33"));
    expect(moved.body.error).toMatchObject({ code: "approval_invalid", reason: expect.stringContaining("staging-api (staging)") });
    expect(moved.body).not.toHaveProperty("token");
    const received = api.received.length;
    expect(await broker.keyward.db.prisma.issuedToken.count({ where: { agentId: agent.id } })).toBe(0);

    // Back where it was approved, the token is the one the human saw.
    expect((await broker.admin("patch", `/v1/grants/${grant.id}`, { upstream: "staging-api" })).status).toBe(200);
    const collected = await collect(held.body.approvalId, agent);
    expect(collected.body).toMatchObject({ status: "issued", token: { scope: "staging-api:GET" } });
    expect(api.received.length).toBe(received);
  });

  it(title("REQ-49"), async () => {
    const prodApi = await startUpstream();
    try {
      await createUpstream(broker, { name: "stage-api", baseUrl: api.url, environment: "stage", secret: "sk-stage-" + "s".repeat(24) });
      await createUpstream(broker, { name: "live-api", baseUrl: prodApi.url, environment: "live", secret: "sk-live-" + "l".repeat(24) });
      expect((await broker.admin("put", "/v1/environments/live", { requiresApproval: true })).status).toBe(200);
      const agent = await createAgent(broker, "exchanger");
      const grant = await createGrant(broker, {
        name: "exchanger-grant",
        agents: [agent.id],
        upstream: "stage-api",
        environments: ["stage", "live"],
        methods: ["GET"],
        paths: ["/**"],
        requiresApproval: true,
      });
      const held = await issueToken(broker, agent, { grant: "exchanger-grant" });
      expect((await as(security, `/v1/approvals/${held.body.approvalId}/approve`)).body).toMatchObject({ upstream: "stage-api", environment: "stage" });
      const parent = (await collect(held.body.approvalId, agent)).body.token.access_token as string;
      expect((await broker.http().get("/proxy/stage-api/v1/x").set("authorization", `Bearer ${parent}`)).status).toBe(200);

      // The grant moves to the live upstream: a token for it needs a human, and the approved stage token is no such token.
      expect((await broker.admin("patch", `/v1/grants/${grant.id}`, { upstream: "live-api" })).status).toBe(200);
      expect((await issueToken(broker, agent, { grant: "exchanger-grant" })).status).toBe(202);
      const exchanged = await postForm(broker, "/oauth2/token", { grant_type: TOKEN_EXCHANGE, subject_token: parent, subject_token_type: ACCESS_TOKEN_TYPE });
      expect(exchanged.status).toBe(statusOf("REQ-49"));
      expect(exchanged.headers["keyward-error"]).toBe("widening_refused");
      expect(exchanged.body).not.toHaveProperty("access_token");
      expect(prodApi.received).toEqual([]);
    } finally {
      await prodApi.close();
    }
  });

  it(title("REQ-50"), async () => {
    const moving = await startUpstream();
    try {
      await createUpstream(broker, { name: "moving-api", baseUrl: moving.url, environment: "sandbox", secret: "sk-moving-" + "m".repeat(24) });
      expect((await broker.admin("put", "/v1/environments/vault", { requiresApproval: true })).status).toBe(200);
      const agent = await createAgent(broker, "stayer");
      await createGrant(broker, {
        name: "stayer-grant",
        agents: [agent.id],
        upstream: "moving-api",
        environments: ["sandbox", "vault"],
        methods: ["GET"],
        paths: ["/**"],
        requiresApproval: true,
      });
      const held = await issueToken(broker, agent, { grant: "stayer-grant" });
      expect((await as(security, `/v1/approvals/${held.body.approvalId}/approve`)).body).toMatchObject({ environment: "sandbox" });
      const approved = (await collect(held.body.approvalId, agent)).body.token.access_token as string;
      const call = () => broker.http().get("/proxy/moving-api/v1/secrets").set("authorization", `Bearer ${approved}`);
      expect((await call()).status).toBe(200);

      // The upstream moves into an environment where every token needs a human's approval: the one given
      // for the sandbox is not it.
      expect((await broker.admin("patch", "/v1/upstreams/moving-api", { environment: "vault" })).status).toBe(200);
      const received = moving.received.length;
      const refused = await call();
      expect(refused.status).toBe(statusOf("REQ-50"));
      expect(refused.body.error).toMatchObject({ code: "approval_required", reason: "the grant requires a token approved by a human" });
      expect(moving.received.length).toBe(received);

      // Back in the sandbox, the token approved there works again.
      expect((await broker.admin("patch", "/v1/upstreams/moving-api", { environment: "sandbox" })).status).toBe(200);
      expect((await call()).status).toBe(200);
    } finally {
      await moving.close();
    }
  });

  it(title("REQ-80"), async () => {
    const approver = (await broker.admin("post", "/v1/admin-keys", { name: "stolen-then-quiet", role: "security" })).body as { id: string; key: string };
    const { agent, approvalId } = await heldRequest({ key: broker.adminKey }, "collected-while-relaxed");
    const grantId = (await broker.admin("get", "/v1/grants")).body.grants.find((g: { name: string }) => g.name === "collected-while-relaxed-grant").id as string;
    expect((await as(approver.key, `/v1/approvals/${approvalId}/approve`)).status).toBe(200);
    // The approving key is found stolen and revoked: its approval is void (ADM-21). During maintenance an
    // admin lifts the grant's approval requirement for a while; the agent collects then.
    expect((await broker.admin("delete", `/v1/admin-keys/${approver.id}`)).status).toBe(204);
    expect((await broker.admin("patch", `/v1/grants/${grantId}`, { requiresApproval: false })).status).toBe(200);
    const collected = await collect(approvalId, agent);
    expect(collected.status).toBe(statusOf("REQ-80"));
    expect(collected.body.error.code).toBe("approval_invalid");
    expect(collected.body).not.toHaveProperty("token");
    // Requirement back: no token counts as approved by the void approval.
    expect((await broker.admin("patch", `/v1/grants/${grantId}`, { requiresApproval: true })).status).toBe(200);
    expect(await broker.keyward.db.prisma.approval.count({ where: { id: approvalId, status: "issued" } })).toBe(0);
  });

  it(title("TOK-38"), async () => {
    const bodies: string[] = [];
    const hook = await startUpstream((_req, res, body) => {
      bodies.push(body);
      res.writeHead(204).end();
    });
    const hookedStore = newStore();
    const hooked = await startBroker(hookedStore, { KEYWARD_APPROVAL_WEBHOOK_URL: `${hook.url}/approvals` });
    try {
      await createUpstream(hooked, { name: "prod", baseUrl: api.url, environment: "production", secret: "sk-prod-" + "b".repeat(24) });
      const agent = await createAgent(hooked, "bidi");
      await createGrant(hooked, { name: "bidi-grant", agents: [agent.id], upstream: "prod", methods: ["GET"], paths: ["/**"], requiresApproval: true });
      // Shown as written, "/v1/\u202esgol/**" ends "**/logs", right to left: a human would read "logs".
      const held = await issueToken(hooked, agent, { grant: "bidi-grant", paths: ["/v1/\u202esgol/**", "/v1/\u200badmin/**"] });
      expect(held.status, held.text).toBe(202);
      await expect.poll(() => bodies.length).toBe(1);
      expect(bodies[0]).not.toMatch(/[\u202e\u200b]/);
      expect(JSON.parse(bodies[0]!).capabilities.paths).toEqual(["/v1/\\u202esgol/**", "/v1/\\u200badmin/**"]);
    } finally {
      await hooked.close();
      await hook.close();
      await hookedStore.drop();
    }
  });

  it(title("REQ-79"), async () => {
    const agent = await createAgent(broker, "control-characters");
    await createGrant(broker, { name: "control-grant", agents: [agent.id], upstream: "prod", methods: ["GET", "DELETE"], paths: ["/**"], requiresApproval: true });
    // On a terminal (or a chat-ops bot printing there) the backspaces erase "/**, " and the CSI sequence
    // rewrites the line: the human reads only the harmless path. The pattern itself can match no call.
    for (const cloak of ["/x\b\b\b\b\b\b/v1/logs/**", "/x\u001b[2K\u001b[G/v1/logs", "/x\u009b2K/v1/logs", "/v1/logs\u007f/**"]) {
      const held = await issueToken(broker, agent, { grant: "control-grant", paths: ["/**", cloak] });
      expect(held.status, cloak).toBe(statusOf("REQ-79"));
      expect(held.body.error.code).toBe("validation_failed");
    }
    // The grant's own paths take no control character either.
    const grant = await broker.admin("post", "/v1/grants", { name: "control-paths", agents: [agent.id], upstream: "prod", methods: ["GET"], paths: ["/v1/\u001b[31m/**"] });
    expect(grant.status).toBe(400);
    expect(await broker.keyward.db.prisma.approval.count({ where: { agentId: agent.id } })).toBe(0);
  });

  it(title("ADM-39"), async () => {
    const posts: { authorization: string | undefined; body: string }[] = [];
    const hook = await startUpstream((req, res, body) => {
      posts.push({ authorization: req.headers.authorization, body });
      res.writeHead(204).end();
    });
    const hookStore = newStore();
    const credential = "Bearer chatops-" + "w".repeat(32);
    const hooked = await startBroker(hookStore, { KEYWARD_APPROVAL_WEBHOOK_URL: `${hook.url}/approvals`, KEYWARD_APPROVAL_WEBHOOK_AUTHORIZATION: credential });
    try {
      await createUpstream(hooked, { name: "prod", baseUrl: api.url, environment: "production", secret: "sk-prod-" + "h".repeat(24) });
      const agent = await createAgent(hooked, "announced");
      await createGrant(hooked, { name: "announced-grant", agents: [agent.id], upstream: "prod", methods: ["GET"], paths: ["/**"], requiresApproval: true });
      expect((await issueToken(hooked, agent, { grant: "announced-grant" })).status).toBe(202);
      await expect.poll(() => posts.length).toBe(1);
      // The receiver can tell Keyward's announcements from anyone else's posts, which could show a real
      // approvalId next to harmless-looking details.
      expect(posts[0]!.authorization).toBe(credential);
      expect(posts[0]!.body).not.toContain("chatops-");
      const events = await hooked.admin("get", "/v1/audit?kind=approval.notified");
      expect(events.body.events).toHaveLength(1);
      expect(JSON.stringify(events.body)).not.toContain("chatops-");
    } finally {
      await hooked.close();
      await hook.close();
      await hookStore.drop();
    }
  });

  it(title("REQ-82"), async () => {
    const agent = await createAgent(broker, "placeholder-names");
    await createGrant(broker, { name: "placeholder-grant", agents: [agent.id], upstream: "prod", methods: ["GET", "DELETE"], paths: ["/v1/**"], requiresApproval: true });
    // Read as written, "/v1/{logs}/**" is "the logs"; {logs} is any one segment: /v1/volumes/** too.
    const held = await issueToken(broker, agent, { grant: "placeholder-grant", paths: ["/v1/{logs}/**", "/v1/backups/{id}"] });
    expect(held.status).toBe(202);
    const pending = await broker.http().get("/v1/approvals?status=pending").set("authorization", `Bearer ${security}`);
    const shown = (pending.body.approvals as { approvalId: string; capabilities: { paths: string[] } }[]).find((a) => a.approvalId === held.body.approvalId);
    expect(shown?.capabilities.paths).toEqual(["/v1/*/**", "/v1/backups/*"]);
    expect((await as(security, `/v1/approvals/${held.body.approvalId}/approve`)).status).toBe(200);
    const token = (await collect(held.body.approvalId, agent)).body.token.access_token as string;
    expect(claimsOf(token).cap).toMatchObject({ paths: ["/v1/*/**", "/v1/backups/*"] });
  });

  it(title("TOK-34"), async () => {
    const webhookCalls: unknown[] = [];
    const hook = await startUpstream((req, res) => {
      webhookCalls.push(req.url);
      res.writeHead(204).end();
    });
    const hookedStore = newStore();
    const hooked = await startBroker(hookedStore, { KEYWARD_APPROVAL_WEBHOOK_URL: `${hook.url}/approvals` });
    try {
      await createUpstream(hooked, { name: "prod", baseUrl: api.url, environment: "production", secret: "sk-prod-" + "p".repeat(24) });
      const onCall = (await hooked.admin("post", "/v1/admin-keys", { name: "on-call", role: "security" })).body.key as string;
      const listPending = async () =>
        ((await hooked.http().get("/v1/approvals?status=pending").set("authorization", `Bearer ${onCall}`)).body.approvals as { approvalId: string; agentId: string }[]);
      const honest = await createAgent(hooked, "honest");
      const flooder = await createAgent(hooked, "flooder");
      await createGrant(hooked, { name: "flooded", agents: [honest.id, flooder.id], upstream: "prod", methods: ["GET"], paths: ["/**"], requiresApproval: true });
      const honestHeld = await issueToken(hooked, honest, { grant: "flooded" });
      expect(honestHeld.status).toBe(202);
      await expect.poll(() => webhookCalls.length).toBe(1);

      // The same request again (a retry loop that does not poll) is the same held request: no new one for a human.
      const again = await Promise.all(Array.from({ length: 5 }, () => issueToken(hooked, flooder, { grant: "flooded", ttlSeconds: 60 })));
      expect(again.map((r) => r.status)).toEqual(Array(5).fill(202));
      expect(new Set(again.map((r) => r.body.approvalId)).size).toBe(1);

      // Distinct requests, many at once: at most MAX_PENDING_PER_AGENT wait; the rest are refused, none held.
      const flood = await Promise.all(Array.from({ length: 60 }, (_, i) => issueToken(hooked, flooder, { grant: "flooded", ttlSeconds: 61 + i })));
      const refused = flood.filter((r) => r.status === statusOf("TOK-34"));
      expect(refused.length).toBe(60 - 9);
      expect(flood.filter((r) => r.status === 202).length).toBe(9);
      for (const r of refused) expect(r.body.error.code).toBe("too_many_pending_approvals");
      const pending = await listPending();
      expect(pending.filter((a) => a.agentId === flooder.id).length).toBe(10);
      expect(pending.map((a) => a.approvalId)).toContain(honestHeld.body.approvalId);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(webhookCalls.length).toBe(11);
      // The refusals are audited as refused token requests.
      const audit = await hooked.admin("get", `/v1/audit?kind=token.refused&reason=too_many_pending_approvals&agentId=${flooder.id}&limit=100`);
      expect(audit.body.events.length).toBe(refused.length);

      // Once a human decides one, there is room for one more; the honest agent was never held up.
      const decided = pending.find((a) => a.agentId === flooder.id)!.approvalId;
      expect((await hooked.http().post(`/v1/approvals/${decided}/deny`).set("authorization", `Bearer ${onCall}`).send({})).status).toBe(200);
      expect((await issueToken(hooked, flooder, { grant: "flooded", ttlSeconds: 300 })).status).toBe(202);
      expect((await issueToken(hooked, flooder, { grant: "flooded", ttlSeconds: 301 })).status).toBe(statusOf("TOK-34"));
      expect((await issueToken(hooked, honest, { grant: "flooded", ttlSeconds: 302 })).status).toBe(202);
    } finally {
      await hooked.close();
      await hook.close();
      await hookedStore.drop();
    }
  }, 60_000);
  it(title("REQ-51"), async () => {
    await createUpstream(broker, { name: "incident-api", baseUrl: api.url, environment: "incident", secret: "sk-incident-" + "i".repeat(24) });
    const agent = await createAgent(broker, "suspect");
    const grant = await createGrant(broker, { name: "suspect-grant", agents: [agent.id], upstream: "incident-api", methods: ["GET"], paths: ["/**"], requiresApproval: true });
    let ttl = 60;
    const approvedRequest = async () => {
      // Revocations cut off by the second: a request made in the second of the previous one is voided (REQ-78).
      await new Promise((resolve) => setTimeout(resolve, 1010 - (Date.now() % 1000)));
      const held = await issueToken(broker, agent, { grant: "suspect-grant", ttlSeconds: ttl++ });
      expect(held.status).toBe(202);
      expect((await as(security, `/v1/approvals/${held.body.approvalId}/approve`)).status).toBe(200);
      return held.body.approvalId as string;
    };

    // Approved, then the security team revokes (the broad ones last: they also revoke what this file issued before).
    for (const target of [
      { agentId: agent.id },
      { grantId: grant.id },
      { upstream: "incident-api" },
      { environment: "incident" },
      { issuedBefore: "NOW" },
      { all: true },
    ]) {
      const approvalId = await approvedRequest();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const body = "issuedBefore" in target ? { issuedBefore: new Date().toISOString() } : target;
      expect((await broker.admin("post", "/v1/revocations", { ...body, reason: "incident" })).status).toBe(201);
      const collected = await collect(approvalId, agent);
      expect(collected.status, JSON.stringify(target)).toBe(statusOf("REQ-51"));
      expect(collected.body.error.code).toBe("approval_invalid");
      expect(collected.body).not.toHaveProperty("token");
    }
    expect(await broker.keyward.db.prisma.issuedToken.count({ where: { agentId: agent.id } })).toBe(0);

    // A request made and approved after the revocation is decided afresh: that token is collected, and works.
    const afterwards = await approvedRequest();
    const token = (await collect(afterwards, agent)).body.token.access_token as string;
    expect((await broker.http().get("/proxy/incident-api/v1/x").set("authorization", `Bearer ${token}`)).status).toBe(200);
  });

  it(title("REQ-78"), async () => {
    await createUpstream(broker, { name: "compromised-api", baseUrl: api.url, environment: "compromised", secret: "sk-compromised-" + "c".repeat(24) });
    const agent = await createAgent(broker, "compromised");
    const grant = await createGrant(broker, { name: "compromised-grant", agents: [agent.id], upstream: "compromised-api", methods: ["GET"], paths: ["/**"], requiresApproval: true });
    for (const target of [{ agentId: agent.id }, { grantId: grant.id }]) {
      // Held while the agent was compromised; the security team then revokes, and another human, not
      // knowing, approves the request still waiting in the queue.
      const held = await issueToken(broker, agent, { grant: "compromised-grant", ttlSeconds: "agentId" in target ? 60 : 61 });
      expect(held.status).toBe(202);
      expect((await broker.admin("post", "/v1/revocations", { ...target, reason: "agent compromised" })).status).toBe(201);
      const approved = await as(security, `/v1/approvals/${held.body.approvalId}/approve`);
      expect(approved.status, JSON.stringify(target)).toBe(statusOf("REQ-78"));
      expect(approved.body.error).toMatchObject({ code: "approval_invalid", reason: expect.stringContaining("revoked") });
      const collected = await collect(held.body.approvalId, agent);
      expect(collected.body).not.toHaveProperty("token");
      // Approved before the revocation and collected after it: voided as REQ-51 says, whichever came first.
    }
    expect(await broker.keyward.db.prisma.issuedToken.count({ where: { agentId: agent.id } })).toBe(0);
    // A request made after the revocation is a new one, for a human to decide.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const fresh = await issueToken(broker, agent, { grant: "compromised-grant", ttlSeconds: 62 });
    expect((await as(security, `/v1/approvals/${fresh.body.approvalId}/approve`)).status).toBe(200);
    const token = (await collect(fresh.body.approvalId, agent)).body.token.access_token as string;
    expect((await broker.http().get("/proxy/compromised-api/v1/x").set("authorization", `Bearer ${token}`)).status).toBe(200);
  });

  describe(title("FLT-37"), () => {
    /** A request held and approved by `security` (who never held the agent's credentials). */
    const approvedRequest = async (name: string) => {
      const held = await heldRequest({ key: broker.adminKey }, name);
      expect((await as(security, `/v1/approvals/${held.approvalId}/approve`)).status).toBe(200);
      return held;
    };
    const proxied = (token: string) => broker.http().get("/proxy/prod/v1/x").set("authorization", `Bearer ${token}`);

    it("a claim whose broker died before minting is taken over by the agent's next poll once its lease lapsed", async () => {
      const { agent, approvalId } = await approvedRequest("claim-abandoned");
      const prisma = broker.keyward.db.prisma;
      // As a broker leaves it that claimed the collection and was killed before the token was minted.
      await prisma.approval.update({ where: { id: approvalId }, data: { status: "issuing", claimedAt: new Date(Date.now() - 5_000) } });
      const early = await collect(approvalId, agent);
      expect(early.body).toMatchObject({ status: "issuing" });
      expect(early.body).not.toHaveProperty("token");
      await prisma.approval.update({ where: { id: approvalId }, data: { claimedAt: new Date(Date.now() - CLAIM_LEASE_MS - 1_000) } });
      // Before: "issuing" until the approval expired, never a token; a human had to approve a new request.
      const polled = await collect(approvalId, agent);
      expect(polled.status, polled.text).toBe(200);
      expect(polled.body).toMatchObject({ status: "issued" });
      expect((await proxied(polled.body.token.access_token)).status).toBe(200);
      expect((await collect(approvalId, agent)).body).not.toHaveProperty("token");
    });

    it("a claimer that mints after its claim was taken over has its token revoked: one approval, one working token", async () => {
      const { agent, approvalId } = await approvedRequest("claim-lost");
      const prisma = broker.keyward.db.prisma;
      await createGrant(broker, { name: "claim-lost-plain", agents: [agent.id], upstream: "prod", methods: ["GET"], paths: ["/**"] });
      // The token this (slow) claimer minted: a real one, working until the approval finds its claim gone.
      const minted = await tokenFor(broker, agent, { grant: "claim-lost-plain" });
      expect((await proxied(minted)).status).toBe(200);
      const slowClaimer = new Approvals(prisma, { ttlSeconds: 900, notifier: null });
      const collected = slowClaimer.collect(agent.id, approvalId, "slow-claimer", async () => {
        // Meanwhile another poll took the claim over (its lease lapsed).
        await prisma.approval.update({ where: { id: approvalId }, data: { claimedAt: new Date(Date.now() + 1) } });
        return { jti: claimsOf(minted).jti as string, expires_in: 900 };
      });
      await expect(collected).rejects.toMatchObject({ code: "approval_invalid" });
      await waitFor(async () => (await proxied(minted)).status === 401, 5_000, "the lost claimer's token revoked");
      expect((await proxied(minted)).body.error.code).toBe("token_revoked");
    });
  });
});
