import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startReplicasBehindRelay, type ReplicasBehindRelay } from "../helpers/pg-relay.js";
import { createAgent, createGrant, tokenFor } from "../helpers/scenario.js";
import { title } from "../security/cases.js";

/**
 * `/readyz` answers anyone (load balancers call it without credentials) and asks the database whether it
 * answers. A burst of readiness checks must not cost one database round trip each: on a database some
 * milliseconds away, a pool's worth of connections then serves them one after another, the last ones past
 * the check's 2 s limit, and a database found "unreachable" that way fails every proxied call closed.
 */
describe("faults: a burst of unauthenticated /readyz calls", () => {
  let replicas: ReplicasBehindRelay;
  let token: string;

  beforeAll(async () => {
    replicas = await startReplicasBehindRelay({ upstreamSecret: "sk-readyz-flood-0123456789" });
    const agent = await createAgent(replicas.a, "agent");
    await createGrant(replicas.a, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
    token = await tokenFor(replicas.b, agent, { grant: "g" });
  });
  afterAll(async () => {
    await replicas?.close();
  });

  it(title("FLT-55"), { timeout: 60_000 }, async () => {
    const { b, relay } = replicas;
    // A database 100 ms away: each round trip holds a pool connection that long.
    relay.delayMs = 100;
    const burst = await Promise.all(Array.from({ length: 400 }, () => fetch(`${b.url}/readyz`).then((r) => r.status)));
    const call = await fetch(`${b.url}/proxy/api/v1/items`, { headers: { authorization: `Bearer ${token}` } });
    relay.delayMs = 0;
    expect(burst.filter((s) => s !== 200)).toEqual([]);
    expect(call.status).toBe(200);
  });
});
