import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

type Agent = Awaited<ReturnType<typeof createAgent>>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Selector revocations cut off at whole seconds of iat: step past the current second. */
const nextSecond = () => sleep(1100 - (Date.now() % 1000));

/** The selectors beyond jti/agent/grant/all, and the kill switch, on one broker. */
describe("revocation selectors and the kill switch", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Agent;
  let securityKey: string;
  let firstTokens: { a: string; b: string; p: string };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "stg-a", baseUrl: upstream.url, environment: "staging", secret: "selector-test-secret-a" });
    await createUpstream(broker, { name: "stg-b", baseUrl: upstream.url, environment: "staging", secret: "selector-test-secret-b" });
    await createUpstream(broker, { name: "prod", baseUrl: upstream.url, environment: "production", secret: "selector-test-secret-p" });
    agent = await createAgent(broker, "selector-agent");
    for (const name of ["stg-a", "stg-b", "prod"]) {
      await createGrant(broker, { name: `g-${name}`, agents: [agent.id], upstream: name, methods: ["GET"], paths: ["/**"] });
    }
    const key = await broker.admin("post", "/v1/admin-keys", { name: "on-call", role: "security" });
    securityKey = key.body.key;
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const tokens = async () => ({
    a: await tokenFor(broker, agent, { grant: "g-stg-a" }),
    b: await tokenFor(broker, agent, { grant: "g-stg-b" }),
    p: await tokenFor(broker, agent, { grant: "g-prod" }),
  });
  const call = (token: string, upstreamName: string) =>
    broker.http().get(`/proxy/${upstreamName}/thing`).set("authorization", `Bearer ${token}`);
  const statuses = async (t: { a: string; b: string; p: string }) => [
    (await call(t.a, "stg-a")).status,
    (await call(t.b, "stg-b")).status,
    (await call(t.p, "prod")).status,
  ];
  const revoke = (body: object, key = broker.adminKey) =>
    broker.http().post("/v1/revocations").set("authorization", `Bearer ${key}`).send(body);

  it("by upstream: only that upstream's tokens stop", async () => {
    await nextSecond();
    const t = await tokens();
    firstTokens = t;
    expect(await statuses(t)).toEqual([200, 200, 200]);
    const res = await revoke({ upstream: "stg-a", reason: "key rotation" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ selector: "upstream", value: "stg-a", reason: "key rotation", actor: expect.stringMatching(/^admin-key:/) });
    expect(await statuses(t)).toEqual([401, 200, 200]);
  });

  it("by environment: every upstream in it stops, others do not; the security role may do it", async () => {
    await nextSecond();
    const t = await tokens();
    expect(await statuses(t)).toEqual([200, 200, 200]);
    const before = upstream.received.length;
    const res = await revoke({ environment: "staging", reason: "staging compromised" }, securityKey);
    expect(res.status).toBe(201);
    const denied = await call(t.b, "stg-b");
    expect(denied.status).toBe(401);
    expect(denied.body.error).toMatchObject({ code: "token_revoked", message: "environment's tokens revoked" });
    expect(await statuses(t)).toEqual([401, 401, 200]);
    expect(upstream.received.length).toBe(before + 1); // only the production call went through
  });

  it("issued before a time: older tokens stop, newer ones work; a future time is refused", async () => {
    await nextSecond();
    const old = await tokens();
    await nextSecond();
    const cutoff = new Date(Date.now() - 100);
    await nextSecond();
    const fresh = await tokens();
    expect((await revoke({ issuedBefore: cutoff.toISOString(), reason: "signing key suspected" })).status).toBe(201);
    expect((await call(old.p, "prod")).status).toBe(401);
    expect((await call(fresh.p, "prod")).status).toBe(200);

    const future = await revoke({ issuedBefore: new Date(Date.now() + 60_000).toISOString() });
    expect(future.status).toBe(400);
    expect(JSON.stringify(future.body)).toMatch(/kill switch/);
  });

  it("refuses an unknown upstream or environment (a typo must not look like a revocation)", async () => {
    expect((await revoke({ upstream: "no-such-upstream" })).status).toBe(404);
    expect((await revoke({ environment: "no-such-env" })).status).toBe(404);
    expect((await revoke({ upstream: "stg-a", environment: "staging" })).status).toBe(400);
  });

  it("kill switch: security engages, every token freezes (even new ones), only an admin lifts", async () => {
    await nextSecond();
    const t = await tokens();
    const security = (method: "get" | "post" | "delete") =>
      broker.http()[method]("/v1/kill-switch").set("authorization", `Bearer ${securityKey}`);

    const engaged = await security("post").send({ reason: "agent went rogue" });
    expect(engaged.status).toBe(201);
    expect(engaged.body).toMatchObject({ engaged: true, reason: "agent went rogue", engagedBy: expect.stringMatching(/^admin-key:/) });
    expect((await security("post").send({})).status).toBe(200); // already engaged: nothing new

    const before = upstream.received.length;
    const frozen = await call(t.p, "prod");
    expect(frozen.status).toBe(403);
    expect(frozen.body.error.code).toBe("kill_switch_engaged");
    const issuedDuring = await tokenFor(broker, agent, { grant: "g-prod" });
    expect((await call(issuedDuring, "prod")).status).toBe(403);
    expect(upstream.received.length).toBe(before);

    expect((await security("delete")).status).toBe(403);
    expect((await security("get")).body.engaged).toBe(true);
    const lifted = await broker.admin("delete", "/v1/kill-switch", { reason: "contained" });
    expect(lifted.status).toBe(200);
    expect(lifted.body.engaged).toBe(false);
    expect((await call(t.p, "prod")).status).toBe(200);
    expect((await call(issuedDuring, "prod")).status).toBe(200);
    expect((await broker.admin("delete", "/v1/kill-switch")).status).toBe(409);
  });

  it("records who, when and why for every revocation and both kill switch moves", async () => {
    const audit = await broker.admin("get", "/v1/audit?limit=100");
    const kinds = audit.body.events.map((e: { kind: string; reason: string | null }) => `${e.kind}:${e.reason}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        "revocation.created:key rotation",
        "revocation.created:staging compromised",
        "revocation.created:signing key suspected",
        "kill_switch.engaged:agent went rogue",
        "kill_switch.lifted:contained",
      ]),
    );
    const list = await broker.admin("get", "/v1/revocations");
    const killSwitch = list.body.revocations.find((r: { selector: string }) => r.selector === "kill_switch");
    expect(killSwitch).toMatchObject({ reason: "agent went rogue", liftedBy: expect.stringMatching(/^admin-key:/) });
    expect(killSwitch.liftedAt).not.toBeNull();
  });

  it("keeps every selector and the kill switch across a restart", async () => {
    await nextSecond();
    const t = await tokens();
    expect((await broker.http().post("/v1/kill-switch").set("authorization", `Bearer ${securityKey}`).send({})).status).toBe(201);
    await broker.close();
    broker = await startBroker(store);
    expect((await call(t.p, "prod")).status).toBe(403);
    expect((await broker.admin("delete", "/v1/kill-switch")).status).toBe(200);
    expect(await statuses(t)).toEqual([200, 200, 200]);
    // Revoked by upstream, by environment, and by issue time respectively, before the restart.
    expect(await statuses(firstTokens)).toEqual([401, 401, 401]);
  });
});
