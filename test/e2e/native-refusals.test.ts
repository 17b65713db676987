import { ClientError, gql, GraphQLClient } from "graphql-request";
import { JSONRPCClient, JSONRPCErrorException, type JSONRPCResponse } from "json-rpc-2.0";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startGraphqlUpstream } from "../helpers/graphql-upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";
import { Denied, Keyward } from "keyward/sdk";

/**
 * Refusals an agent's client understands: GraphQL errors for graphql-request, JSON-RPC errors with the
 * call's id for a JSON-RPC client library (json-rpc-2.0), each keeping the status and keyward-error.
 * (AWS's XML errors are tested with the real S3 client in s3-operations.test.ts.)
 */

let store: Store;
let broker: TestBroker;
let graphqlApi: Awaited<ReturnType<typeof startGraphqlUpstream>>;
let rpcApi: Awaited<ReturnType<typeof startUpstream>>;
let agent: { id: string; clientId: string; clientSecret: string };

beforeAll(async () => {
  store = newStore();
  broker = await startBroker(store);
  graphqlApi = await startGraphqlUpstream();
  rpcApi = await startUpstream((_req, res, body) => {
    const calls = JSON.parse(body) as { id: number; method: string } | { id: number; method: string }[];
    const answer = (c: { id: number; method: string }) => ({ jsonrpc: "2.0", id: c.id, result: `${c.method} ok` });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(Array.isArray(calls) ? calls.map(answer) : answer(calls)));
  });
  agent = await createAgent(broker, "native-agent");
  await createUpstream(broker, { name: "hosting", baseUrl: graphqlApi.url, environment: "staging", protocol: "graphql", secret: "graphql-real-token" });
  await createUpstream(broker, { name: "chain", baseUrl: rpcApi.url, environment: "staging", protocol: "jsonrpc", secret: "rpc-real-token" });
  await createGrant(broker, {
    name: "hosting-read",
    agents: [agent.id],
    upstream: "hosting",
    methods: ["POST"],
    paths: ["/graphql"],
    graphql: { allow: [{ operation: "query" }] },
  });
  await createGrant(broker, {
    name: "chain-read",
    agents: [agent.id],
    upstream: "chain",
    methods: ["POST"],
    paths: ["/rpc"],
    jsonrpc: { allow: [{ method: "eth_*" }], deny: [{ method: "eth_sendRawTransaction" }] },
  });
  await createGrant(broker, { name: "chain-any", agents: [agent.id], upstream: "chain", methods: ["POST"], paths: ["/rpc"] });
});

afterAll(async () => {
  await broker?.close();
  await graphqlApi?.close();
  await rpcApi?.close();
  await store?.drop();
});

describe("GraphQL refusals", () => {
  it("graphql-request sees a GraphQL error with the Keyward code, and the status and header stay", async () => {
    const token = await tokenFor(broker, agent, { grant: "hosting-read" });
    const client = new GraphQLClient(`${broker.url}/proxy/hosting/graphql`, { headers: { authorization: `Bearer ${token}` } });
    const { services } = await client.request<{ services: { name: string }[] }>(gql`{ services { name } }`);
    expect(services.map((s) => s.name)).toEqual(["api"]);

    const refused = await client.request(gql`mutation { volumeDelete(volumeId: "vol-1") }`).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ClientError);
    const { response } = refused as ClientError;
    expect(response.status).toBe(403);
    expect(response.headers.get("keyward-error")).toBe("operation_denied");
    expect(response.errors).toEqual([
      { message: expect.stringContaining("mutation volumeDelete"), extensions: { code: "operation_denied", reason: expect.stringContaining("volumeDelete") } },
    ]);
    expect(graphqlApi.state.volumes).toHaveLength(1);
  });
});

describe("JSON-RPC refusals", () => {
  /** A json-rpc-2.0 client over fetch that hands every JSON answer to the library, whatever its status. */
  function rpcClient(token: string, path = "/rpc") {
    const statuses: number[] = [];
    const client: JSONRPCClient = new JSONRPCClient(async (payload) => {
      const res = await fetch(`${broker.url}/proxy/chain${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(payload),
      });
      statuses.push(res.status);
      client.receive((await res.json()) as JSONRPCResponse | JSONRPCResponse[]);
    });
    return { client, statuses };
  }

  it("a refused call rejects with a JSON-RPC error carrying its id and the Keyward code", async () => {
    const { client, statuses } = rpcClient(await tokenFor(broker, agent, { grant: "chain-read" }));
    expect(await client.request("eth_blockNumber", [])).toBe("eth_blockNumber ok");
    const refused = await Promise.resolve(client.request("eth_sendRawTransaction", ["0xdead"])).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(JSONRPCErrorException);
    expect(refused).toMatchObject({ code: -32003, data: { code: "deny_rule", reason: expect.stringContaining("eth_sendRawTransaction") } });
    expect(statuses).toEqual([200, 403]);
  });

  it("a refused batch gets one error per member, each with its own id", async () => {
    const { client } = rpcClient(await tokenFor(broker, agent, { grant: "chain-read" }));
    const before = rpcApi.received.length;
    const responses = await client.requestAdvanced([
      { jsonrpc: "2.0", id: 41, method: "eth_blockNumber" },
      { jsonrpc: "2.0", id: "forty-two", method: "eth_sendRawTransaction", params: ["0xdead"] },
    ]);
    expect(responses.map((r) => [r.id, "error" in r && r.error?.data])).toEqual([
      [41, { code: "deny_rule", reason: expect.any(String) }],
      ["forty-two", { code: "deny_rule", reason: expect.any(String) }],
    ]);
    expect(rpcApi.received.length).toBe(before);
  });

  it("a call refused before its body is inspected still gets its id back", async () => {
    const { client, statuses } = rpcClient(await tokenFor(broker, agent, { grant: "chain-any" }), "/admin");
    const refused = await Promise.resolve(client.request("eth_blockNumber", [])).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: -32003, data: { code: "path_not_granted", reason: expect.stringContaining("/admin") } });
    expect(statuses).toEqual([403]);
  });
});

describe("the SDK", () => {
  it("still throws Denied with the Keyward code for a refusal in the upstream's protocol", async () => {
    const kw = await Keyward.connect({ url: broker.url, clientId: agent.clientId, clientSecret: agent.clientSecret });
    await kw.token({ grant: "hosting-read" });
    const refused = await kw
      .fetch("hosting", "/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: `mutation { volumeDelete(volumeId: "vol-1") }` }),
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Denied);
    expect(refused).toMatchObject({ status: 403, code: "operation_denied", reason: expect.stringContaining("volumeDelete") });
  });
});
