import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

// Grants, upstreams and environments are held in memory (src/change-feed/row-cache.ts): every admin change
// must still take effect on the very next call of the replica that made it.
describe("what the broker holds in memory follows every change at once", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "first-secret" });
    agent = await createAgent(broker, "cached");
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const call = (token: string, path = "/proxy/api/v1/x") => broker.http().get(path).set("authorization", `Bearer ${token}`);

  it("a grant edit narrows, and widens, a live token on its next call", async () => {
    const grant = await createGrant(broker, { name: "edited", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    const token = await tokenFor(broker, agent, { grant: "edited" });
    expect((await call(token)).status).toBe(200);
    expect((await broker.admin("patch", `/v1/grants/${grant.id}`, { paths: ["/v2/**"] })).status).toBe(200);
    expect((await call(token)).status).toBe(403);
    expect((await broker.admin("patch", `/v1/grants/${grant.id}`, { paths: ["/v1/**"] })).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    expect((await broker.admin("patch", `/v1/grants/${grant.id}`, { agents: [] })).status).toBe(200);
    expect((await call(token)).status).toBe(403);
  });

  it("a grant is asked for by its name as it is now: renamed, deleted, or a new grant under an old name", async () => {
    const first = await createGrant(broker, { name: "named", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    await tokenFor(broker, agent, { grant: "named" });
    expect((await broker.admin("patch", `/v1/grants/${first.id}`, { name: "renamed" })).status).toBe(200);
    expect((await issueToken(broker, agent, { grant: "named" })).status).toBe(404);
    await tokenFor(broker, agent, { grant: "renamed" });
    const second = await createGrant(broker, { name: "named", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    const token = await tokenFor(broker, agent, { grant: "named" });
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    expect(claims.grant).toBe(second.id);
    expect((await broker.admin("delete", `/v1/grants/${second.id}`)).status).toBe(204);
    expect((await issueToken(broker, agent, { grant: "named" })).status).toBe(404);
  });

  it("an upstream's new secret, and its environment's new settings, apply to the next call", async () => {
    await createGrant(broker, { name: "plain", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    const token = await tokenFor(broker, agent, { grant: "plain" });
    expect((await call(token)).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer first-secret");
    expect((await broker.admin("put", "/v1/upstreams/api/secret", { secret: "second-secret" })).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    expect(upstream.received.at(-1)!.headers.authorization).toBe("Bearer second-secret");
    expect((await broker.admin("put", "/v1/environments/staging", { requiresApproval: true })).status).toBe(200);
    expect((await call(token)).status).toBe(403);
    expect((await broker.admin("put", "/v1/environments/staging", { requiresApproval: false })).status).toBe(200);
    expect((await call(token)).status).toBe(200);
  });

  it("an upstream created under a name that was asked for before is found", async () => {
    const token = await tokenFor(broker, agent, { grant: "plain" });
    expect((await call(token, "/proxy/later/v1/x")).status).toBe(404);
    await createUpstream(broker, { name: "later", baseUrl: upstream.url, environment: "staging", secret: "later-secret" });
    expect((await call(token, "/proxy/later/v1/x")).status).toBe(403); // found; the token is for "api"
  });

  it("an agent is read from memory at token requests, yet a rotated secret, or a deletion apply to the next request, on every replica", async () => {
    const other = await startBroker(store);
    try {
      const rotated = await createAgent(broker, "rotated");
      await createGrant(broker, { name: "rotated-g", agents: [rotated.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
      // Both replicas hold it now.
      expect((await issueToken(broker, rotated, { grant: "rotated-g" })).status).toBe(200);
      expect((await issueToken(other, rotated, { grant: "rotated-g" })).status).toBe(200);

      const res = await broker.admin("post", `/v1/agents/${rotated.id}/rotate-secret`, { overlapSeconds: 0 });
      expect(res.status).toBe(200);
      const fresh = { clientId: rotated.clientId, clientSecret: res.body.clientSecret as string };
      // The replica that made the change: at once.
      expect((await issueToken(broker, rotated, { grant: "rotated-g" })).status).toBe(401);
      expect((await issueToken(broker, fresh, { grant: "rotated-g" })).status).toBe(200);
      // The other: as soon as the change channel brings it (milliseconds), never the old secret after that.
      await vi.waitFor(async () => expect((await issueToken(other, rotated, { grant: "rotated-g" })).status).toBe(401), { timeout: 2_000, interval: 20 });
      expect((await issueToken(other, fresh, { grant: "rotated-g" })).status).toBe(200);

      expect((await broker.admin("delete", `/v1/agents/${rotated.id}`)).status).toBe(204);
      expect((await issueToken(broker, fresh, { grant: "rotated-g" })).status).toBe(401);
      await vi.waitFor(async () => expect((await issueToken(other, fresh, { grant: "rotated-g" })).status).toBe(401), { timeout: 2_000, interval: 20 });
    } finally {
      await other.close();
    }
  });
});
