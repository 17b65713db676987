import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestBroker } from "../helpers/broker.js";
import { startReplicasBehindRelay, type PgRelay, type ReplicasBehindRelay } from "../helpers/pg-relay.js";
import { createAgent, createGrant, tokenFor } from "../helpers/scenario.js";
import { waitFor } from "../helpers/wait.js";
import { statusOf, title } from "./cases.js";

/**
 * An admin change answered by one replica holds on the next call through any replica, as a revocation
 * does (docs/replicas.md), not only once the other replicas happen to have heard of it.
 */
describe("security: an admin change answered on one replica, the next call on another", () => {
  let replicas: ReplicasBehindRelay;
  let a: TestBroker;
  let b: TestBroker;
  let relay: PgRelay;
  let token: string;
  let grantId: string;

  beforeAll(async () => {
    replicas = await startReplicasBehindRelay({ upstreamSecret: "replica-propagation-upstream-secret" });
    ({ a, b, relay } = replicas);
    const agent = await createAgent(a, "agent");
    grantId = (await createGrant(a, { name: "wide", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] })).id;
    token = await tokenFor(a, agent, { grant: "wide" });
  }, 60_000);

  afterAll(() => replicas?.close());

  const call = (replica: TestBroker, path: string) => replica.http().get(`/proxy/api${path}`).set("authorization", `Bearer ${token}`);

  it(`${title("TOK-30")}`, async () => {
    // B holds the wide grant in memory, and has heard A's pings (A knows it is live).
    await waitFor(async () => (await call(b, "/v1/admin/x")).status === 200, 5000, "the wide grant on B");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    relay.delayMs = 300;
    try {
      const narrowed = await a.admin("patch", `/v1/grants/${grantId}`, { paths: ["/v1/items/**"] });
      expect(narrowed.status, narrowed.text).toBe(200);
      const before = replicas.upstream.received.length;
      const res = await call(b, "/v1/admin/x");
      expect(res.status).toBe(statusOf("TOK-30"));
      expect(res.body.error.code).toBe("path_not_granted");
      expect(replicas.upstream.received.length).toBe(before);
    } finally {
      relay.delayMs = 0;
    }
    // What the narrowed grant still allows goes through.
    expect((await call(b, "/v1/items/1")).status).toBe(200);
  }, 30_000);
});
