import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { title } from "./cases.js";
import { newStore, type Store } from "../helpers/broker.js";
import { answersWithin, startBrokerProcessAfter, type BrokerProcess } from "../helpers/broker-process.js";
import { basic, createAgent, createGrant, createUpstream } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

/**
 * Path patterns an agent chooses (a token's narrowed `paths`, or `scope=path:...`) are matched against
 * every call it makes. The broker runs in a process of its own: a matcher that stalled the event loop
 * would stall the test runner too if it ran in-process.
 */
describe("security: path patterns an agent chooses", () => {
  let store: Store;
  let broker: BrokerProcess;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: { id: string; clientId: string; clientSecret: string };

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    ({ broker, made: agent } = await startBrokerProcessAfter(store, async (setup) => {
      await createUpstream(setup, { name: "api", baseUrl: upstream.url, environment: "staging", secret: "sk-path-patterns-0123456789" });
      const created = await createAgent(setup, "agent");
      await createGrant(setup, { name: "g", agents: [created.id], upstream: "api", methods: ["GET"], paths: ["/v1/**"] });
      return created;
    }));
  });

  afterAll(async () => {
    // SIGKILL: a broker whose event loop is stuck would not get round to a graceful stop.
    await broker?.kill();
    await upstream?.close();
    await store?.drop();
  });

  // Twenty `**` then a literal: /v1/** covers it, so the token is issued (by either endpoint). A call of
  // 24 segments that do not end in the literal made the matcher try every spread of them across the `**`:
  // hours, with every other call, /healthz included, waiting.
  const pattern = "/v1" + "/**".repeat(20) + "/z";
  const tokenRequests: [string, () => Promise<Response>][] = [
    ["POST /v1/tokens paths", () => fetch(broker.url + "/v1/tokens", {
      method: "POST",
      headers: { authorization: basic(agent.clientId, agent.clientSecret), "content-type": "application/json" },
      body: JSON.stringify({ grant: "g", paths: [pattern] }),
      signal: AbortSignal.timeout(5000),
    })],
    ["/oauth2/token scope=path:", () => fetch(broker.url + "/oauth2/token", {
      method: "POST",
      headers: { authorization: basic(agent.clientId, agent.clientSecret), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: `grant:g path:${pattern}` }).toString(),
      signal: AbortSignal.timeout(5000),
    })],
  ];

  it.each(tokenRequests)(`${title("REQ-32")}: token from %s`, async (_how, issue) => {
    const issued = await issue();
    expect(issued.status).toBe(200);
    const token = ((await issued.json()) as { access_token: string }).access_token;

    const call = (path: string) =>
      fetch(`${broker.url}/proxy/api${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) }).then(
        (r) => r.status,
        (err: Error) => `no answer: ${err.name}`,
      );
    const refused = call("/v1" + "/a".repeat(24));
    const healthy = answersWithin(broker, 2000);
    expect(await refused).toBe(403);
    expect(await healthy).toBe(true);
    expect(upstream.received).toHaveLength(0);

    expect(await call("/v1" + "/a".repeat(24) + "/z")).toBe(200);
    expect(upstream.received.pop()!.url).toBe("/v1" + "/a".repeat(24) + "/z");
  });
});
