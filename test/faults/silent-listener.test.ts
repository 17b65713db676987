import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestBroker } from "../helpers/broker.js";
import { startReplicasBehindRelay, type PgRelay, type ReplicasBehindRelay } from "../helpers/pg-relay.js";
import { createAgent, createGrant, tokenFor } from "../helpers/scenario.js";
import { waitFor } from "../helpers/wait.js";
import { statusOf, title } from "../security/cases.js";

/**
 * A notification connection can die without a word: after a failover or a cut path, no reset arrives and
 * TCP keepalive would tell after some two hours. The replica's own pings stop coming back; it must fail
 * closed, and then repair the connection itself rather than wait for an error that does not come.
 */
describe("faults: a replica's notification connection goes silent", () => {
  let replicas: ReplicasBehindRelay;
  let a: TestBroker;
  let b: TestBroker;
  let relay: PgRelay;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  const STALENESS_MS = 2000;

  beforeAll(async () => {
    replicas = await startReplicasBehindRelay({
      upstreamSecret: "silent-listener-upstream-secret",
      envB: { KEYWARD_REVOCATION_MAX_STALENESS_MS: String(STALENESS_MS) },
    });
    ({ a, b, relay } = replicas);
    agent = await createAgent(a, "agent");
    await createGrant(a, { name: "g", agents: [agent.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
  }, 60_000);

  afterAll(() => replicas?.close());

  const call = (replica: TestBroker, token: string) => replica.http().get("/proxy/api/v1/x").set("authorization", `Bearer ${token}`);

  it(title("FLT-20"), async () => {
    const kept = await tokenFor(a, agent, { grant: "g" });
    const revoked = await tokenFor(a, agent, { grant: "g" });
    expect((await call(b, kept)).status).toBe(200);
    expect((await call(b, revoked)).status).toBe(200);

    const silencedAt = Date.now();
    expect(relay.silence("keyward-listener")).toBe(1);
    const jti = JSON.parse(Buffer.from(revoked.split(".")[1]!, "base64url").toString()).jti as string;
    expect((await a.admin("post", "/v1/revocations", { jti })).status).toBe(201);

    // Fails closed within the bound (and a heartbeat of slack)...
    await waitFor(async () => (await call(b, kept)).status === statusOf("FLT-20"), STALENESS_MS + 1500, "B failing closed");
    expect((await call(b, kept)).body.error.code).toBe("revocation_state_stale");
    expect((await b.http().get("/readyz")).status).toBe(503);
    // ...then repairs the connection itself: serving again within about twice the bound of the silence.
    await waitFor(async () => (await call(b, kept)).status === 200, 3 * STALENESS_MS + 3000, "B serving again");
    expect(Date.now() - silencedAt).toBeLessThan(3 * STALENESS_MS + 3000 + STALENESS_MS + 1500);
    expect((await b.http().get("/readyz")).status).toBe(200);
    expect((await call(b, revoked)).status).toBe(401);
  }, 60_000);
});
