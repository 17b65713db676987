import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { statusOf, title } from "./cases.js";

/**
 * Verification accepts a token for KEYWARD_CLOCK_SKEW_SECONDS after its `exp`: a revocation that let go of
 * it at `exp` would let it through again for that long. And a token refused by the proxy (its upstream's
 * environment revoked) must not be exchanged for a child either.
 */
describe("security: revocations hold as long as a token verifies", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    // Defaults: KEYWARD_CLOCK_SKEW_SECONDS=5, KEYWARD_REVOCATION_RESYNC_MS=2000.
    broker = await startBroker(store);
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "leeway-test-secret" });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  it(title("TOK-24"), async () => {
    const agent = await createAgent(broker, "leeway-agent");
    await createGrant(broker, { name: "leeway-grant", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    const token = await tokenFor(broker, agent, { grant: "leeway-grant", ttlSeconds: 2 });
    const { jti, exp } = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { jti: string; exp: number };
    const get = () => broker.http().get("/proxy/api/thing").set("authorization", `Bearer ${token}`);

    expect((await broker.admin("post", "/v1/revocations", { jti, reason: "leaked" })).status).toBe(201);
    expect((await get()).status).toBe(401);

    // Past exp, with a resync (every 2 s) since, and inside the 5 s leeway verification allows.
    await sleep(Math.max(0, exp * 1000 - Date.now()) + 2_800);
    const before = upstream.received.length;
    const res = await get();
    // Before the fix: 200, forwarded with the real key (the revocation was forgotten at exp).
    expect(res.status).toBe(statusOf("TOK-24"));
    expect(upstream.received.length).toBe(before);
  });

  it(title("TOK-25"), async () => {
    const agent = await createAgent(broker, "env-agent");
    await createGrant(broker, { name: "env-grant", upstream: "api", methods: ["GET"], paths: ["/**"], agents: [agent.id] });
    const parent = await tokenFor(broker, agent, { grant: "env-grant" });
    expect((await broker.admin("post", "/v1/revocations", { environment: "staging", reason: "incident" })).status).toBe(201);

    const call = await broker.http().get("/proxy/api/thing").set("authorization", `Bearer ${parent}`);
    expect(call.status).toBe(401);
    expect(call.body.error.code).toBe("token_revoked");

    const exchanged = await broker
      .http()
      .post("/oauth2/token")
      .type("form")
      .send({
        grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token_type: "urn:ietf:params:oauth:token-type:access_token",
        subject_token: parent,
      });
    // Before the fix: 200 and a child token, recorded and audited as an allow.
    expect(exchanged.status).toBe(statusOf("TOK-25"));
    expect(exchanged.body.error).toBe("invalid_request");
    expect(exchanged.body.access_token).toBeUndefined();
  });
});
