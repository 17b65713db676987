import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

describe("revocation", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let alice: Agent;
  let bob: Agent;
  let grantA: { id: string };
  let grantB: { id: string };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "revocation-test-secret" });
    alice = await createAgent(broker, "alice");
    bob = await createAgent(broker, "bob");
    const base = { upstream: "api", methods: ["GET"], paths: ["/**"] };
    grantA = await createGrant(broker, { ...base, name: "grant-a", agents: [alice.id, bob.id] });
    grantB = await createGrant(broker, { ...base, name: "grant-b", agents: [alice.id, bob.id] });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const get = (token: string, b = broker) => b.http().get("/proxy/api/thing").set("authorization", `Bearer ${token}`);
  const revoke = (body: object) => broker.admin("post", "/v1/revocations", body);
  const jtiOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;

  it("by jti: only that token stops, on the very next call", async () => {
    const t1 = await tokenFor(broker, alice, { grant: "grant-a" });
    const t2 = await tokenFor(broker, alice, { grant: "grant-a" });
    expect((await get(t1)).status).toBe(200);
    const res = await revoke({ jti: jtiOf(t1), reason: "leaked in a log" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ selector: "jti", value: jtiOf(t1) });
    const before = upstream.received.length;
    const denied = await get(t1);
    expect(denied.status).toBe(401);
    expect(denied.body.error.code).toBe("token_revoked");
    expect(upstream.received.length).toBe(before);
    expect((await get(t2)).status).toBe(200);
  });

  it("by agent: that agent's tokens stop, other agents' do not", async () => {
    const a = await tokenFor(broker, alice, { grant: "grant-a" });
    const b = await tokenFor(broker, bob, { grant: "grant-a" });
    expect((await revoke({ agentId: alice.id })).status).toBe(201);
    expect((await get(a)).status).toBe(401);
    expect((await get(b)).status).toBe(200);
  });

  it("by grant: that grant's tokens stop, other grants' do not", async () => {
    const a = await tokenFor(broker, bob, { grant: "grant-a" });
    const b = await tokenFor(broker, bob, { grant: "grant-b" });
    expect((await revoke({ grantId: grantA.id })).status).toBe(201);
    expect((await get(a)).status).toBe(401);
    expect((await get(b)).status).toBe(200);
  });

  it("all: every token issued so far stops; tokens issued later work", async () => {
    const a = await tokenFor(broker, bob, { grant: "grant-b" });
    expect((await revoke({ all: true, reason: "incident" })).status).toBe(201);
    expect((await get(a)).status).toBe(401);
    // Revocations compare whole seconds of iat, so a token from the same second counts as revoked.
    await new Promise((r) => setTimeout(r, 1100));
    const later = await tokenFor(broker, bob, { grant: "grant-b" });
    expect((await get(later)).status).toBe(200);
  });

  it("refuses a request naming no selector, two selectors, or an unknown jti", async () => {
    expect((await revoke({})).status).toBe(400);
    expect((await revoke({ jti: "x", agentId: alice.id })).status).toBe(400);
    expect((await revoke({ all: false })).status).toBe(400);
    const unknown = await revoke({ jti: "no-such-token" });
    expect(unknown.status).toBe(404);
  });

  it("deleting a grant or an agent stops their tokens", async () => {
    const carol = await createAgent(broker, "carol");
    const g = await createGrant(broker, { name: "grant-c", agents: [carol.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    const t = await tokenFor(broker, carol, { grant: "grant-c" });
    expect((await get(t)).status).toBe(200);
    expect((await broker.admin("delete", `/v1/grants/${g.id}`)).status).toBe(204);
    expect((await get(t)).status).toBe(401);

    const dave = await createAgent(broker, "dave");
    await createGrant(broker, { name: "grant-d", agents: [dave.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    const td = await tokenFor(broker, dave, { grant: "grant-d" });
    expect((await get(td)).status).toBe(200);
    expect((await broker.admin("delete", `/v1/agents/${dave.id}`)).status).toBe(204);
    expect((await get(td)).status).toBe(401);
    // Its secret, remembered since its last token (src/agents/verified-secrets.ts), no longer authenticates.
    expect((await issueToken(broker, dave, { grant: "grant-d" })).status).toBe(401);
  });

  it("records who revoked, when and why", async () => {
    const res = await broker.admin("get", "/v1/audit?kind=revocation.created&limit=50");
    expect(res.status).toBe(200);
    const reasons = res.body.events.map((e: { reason: string | null }) => e.reason);
    expect(reasons).toContain("leaked in a log");
    expect(reasons).toContain("incident");
    for (const e of res.body.events) expect(e.actor).toMatch(/^admin-key:/);
  });

  it("every selector survives a restart on the same data", async () => {
    // "all" first, and a second later (cutoffs compare whole seconds of iat) the tokens for the other
    // selectors: otherwise "all" alone would stop them and hide whether their own revocations survived.
    const issuedBeforeAll = await tokenFor(broker, bob, { grant: "grant-b" });
    expect((await revoke({ all: true })).status).toBe(201);
    await new Promise((r) => setTimeout(r, 1100));

    // Each token below is stopped by exactly one selector.
    const base = { upstream: "api", methods: ["GET"], paths: ["/**"] };
    const erin = await createAgent(broker, "erin");
    await createGrant(broker, { ...base, name: "grant-erin", agents: [erin.id] });
    const grantE = await createGrant(broker, { ...base, name: "grant-e", agents: [bob.id] });
    const byJti = await tokenFor(broker, bob, { grant: "grant-b" });
    const byAgent = await tokenFor(broker, erin, { grant: "grant-erin" });
    const byGrant = await tokenFor(broker, bob, { grant: "grant-e" });
    // Same agent and grant as byJti, other agent than byAgent, other grant than byGrant, issued after "all".
    const kept = await tokenFor(broker, bob, { grant: "grant-b" });
    expect((await revoke({ jti: jtiOf(byJti) })).status).toBe(201);
    expect((await revoke({ agentId: erin.id })).status).toBe(201);
    expect((await revoke({ grantId: grantE.id })).status).toBe(201);

    await broker.close();
    broker = await startBroker(store);
    for (const [selector, token] of Object.entries({ all: issuedBeforeAll, jti: byJti, agentId: byAgent, grantId: byGrant })) {
      const res = await get(token);
      expect(res.status, selector).toBe(401);
      expect(res.body.error.code, selector).toBe("token_revoked");
    }
    // The signing key survived too: a token issued before the restart and revoked by nothing still verifies.
    expect((await get(kept)).status).toBe(200);
  });
});
