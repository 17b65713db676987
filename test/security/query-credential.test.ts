import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusOf, title } from "./cases.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const SECRET = "sk-query-credential-0123456789abcdef";

/**
 * REQ-43: an upstream whose credential is the query parameter `api_key`. The agent's own value for it is
 * dropped in every spelling a server reads as `api_key`, so the upstream never reads the agent's key in
 * place of (or beside) the injected one, nor an array of both.
 */
describe("security: a query-parameter credential", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let token: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "maps", baseUrl: upstream.url, environment: "staging", secret: SECRET, auth: { type: "query", param: "api_key" } });
    const agent = await createAgent(broker, "agent");
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "maps", methods: ["GET"], paths: ["/v1/**"] });
    token = await tokenFor(broker, agent, { grant: "g" });
  });
  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const get = (query: string) => broker.http().get(`/proxy/maps/v1/items?${query}`).set("authorization", `Bearer ${token}`);

  it.each([
    "api_key=agent-key", // the name itself
    "api_key[]=agent-key", "api_key%5B%5D=agent-key", "api_key[0]=agent-key", // an array in qs (Express), PHP and Rack
    "api.key=agent-key", "api+key=agent-key", "api[key=agent-key", "%20api_key=agent-key", // PHP makes these `api_key`
    "api_key%00=agent-key", "api_key%00x=agent-key", // PHP cuts a name at a NUL
    "api%5Fkey=agent-key", "api%255Fkey=agent-key", // decoded once, or twice
    "API_KEY=agent-key", "Api_Key=agent-key", // ASP.NET reads names in any case
  ])(`${title("REQ-43")}: ?%s&x=1`, async (query) => {
    const res = await get(`${query}&x=1`);
    expect(res.status).toBe(statusOf("REQ-43"));
    const received = upstream.received.at(-1)!;
    expect(received.url).toBe(`/v1/items?x=1&api_key=${SECRET}`);
    expect(received.url).not.toContain("agent-key");
  });

  it("REQ-43: parameters no server reads as api_key are forwarded", async () => {
    const res = await get("api_key2=a&apikey=b&x[api_key]=c");
    expect(res.status).toBe(200);
    expect(upstream.received.at(-1)!.url).toBe(`/v1/items?api_key2=a&apikey=b&x%5Bapi_key%5D=c&api_key=${SECRET}`);
  });
});
