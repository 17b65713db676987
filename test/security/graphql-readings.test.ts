import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { buildSchema, graphql } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusOf, title } from "./cases.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

type GraphqlParams = { query?: string; operationName?: string };
/** How a server reads a request's GraphQL parameters: the URL's query string as sent, the body, its content type. */
type Reading = (rawQuery: string, body: Buffer, contentType: string | undefined) => GraphqlParams;

const decode = (text: string) => decodeURIComponent(text.replace(/\+/g, " "));

/**
 * Rails on Rack 2 (graphql-ruby's generated controller reads `params[:query]`): parameters split on `&`
 * and `;`, the last of a name wins, and the URL's win over the body's (ActionDispatch merges
 * `request_parameters.merge(query_parameters)`).
 */
const railsReading: Reading = (rawQuery, body, contentType) => {
  const params: Record<string, string> = {};
  if (contentType?.startsWith("application/json")) Object.assign(params, JSON.parse(body.toString("utf8")));
  for (const pair of rawQuery.split(/[&;] */)) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    params[decode(equals === -1 ? pair : pair.slice(0, equals))] = equals === -1 ? "" : decode(pair.slice(equals + 1));
  }
  return { query: params.query, operationName: params.operationName };
};

/**
 * graphql-java (Spring for GraphQL, DGS): its grammar ends a comment at U+2028 and U+2029 and skips them
 * as line terminators (GraphqlCommon.g4), which the spec and graphql-js, Keyward's parser, do not.
 */
const graphqlJavaReading: Reading = (_rawQuery, body) => {
  const { query, operationName } = JSON.parse(body.toString("utf8")) as GraphqlParams;
  return { query: query?.replace(/[\u2028\u2029]/g, "\n"), operationName };
};

/** Documents a server stored under their sha256 hash earlier (automatic persisted queries): Keyward never saw them. */
const stored = new Map<string, string>();
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/**
 * A server that runs the document it stored under a hash in preference to the one sent beside it, and
 * whose JSON reader keeps the first of two keys: it reads the first `sha256Hash` of `extensions`.
 */
const storedFirstReading: Reading = (rawQuery) => {
  const url = new URLSearchParams(rawQuery);
  const hash = /"sha256Hash"\s*:\s*"([0-9a-f]{64})"/.exec(url.get("extensions") ?? "")?.[1];
  return { query: (hash !== undefined ? stored.get(hash) : undefined) ?? url.get("query") ?? undefined };
};

/** A GraphQL server shaped like a hosting provider's API, reading its parameters as `read` says. */
async function startReadingServer(read: Reading) {
  const schema = buildSchema(`
    type Volume { id: ID! }
    type Query { volumes: [Volume!]! }
    type Mutation { serviceCreate(name: String!): Boolean! volumeDelete(volumeId: ID!): Boolean! }
  `);
  const state = { volumes: [{ id: "vol-1" }] };
  const rootValue = {
    volumes: () => state.volumes,
    serviceCreate: () => true,
    volumeDelete: ({ volumeId }: { volumeId: string }) => {
      state.volumes = state.volumes.filter((v) => v.id !== volumeId);
      return true;
    },
  };
  const received: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      received.push(`${req.method} ${req.url}`);
      const url = req.url ?? "/";
      const rawQuery = url.includes("?") ? url.slice(url.indexOf("?") + 1) : "";
      const { query, operationName } = read(rawQuery, Buffer.concat(chunks), req.headers["content-type"]);
      const result = await graphql({ schema, source: query ?? "", rootValue, operationName });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(result));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    state,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * GraphQL calls that Keyward reads as harmless and a real server reads as `volumeDelete`: parser
 * differentials between Keyward's reading of a call (WHATWG URL parameters, graphql-js) and a server's.
 * The grant allows queries and `serviceCreate`, denies `*Delete`.
 */
describe("security: GraphQL calls read as other servers read them", () => {
  let store: Store;
  let broker: TestBroker;
  let rails: Awaited<ReturnType<typeof startReadingServer>>;
  let java: Awaited<ReturnType<typeof startReadingServer>>;
  let apq: Awaited<ReturnType<typeof startReadingServer>>;
  let token: string;
  let javaToken: string;
  let apqToken: string;

  beforeAll(async () => {
    rails = await startReadingServer(railsReading);
    java = await startReadingServer(graphqlJavaReading);
    apq = await startReadingServer(storedFirstReading);
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "rails", baseUrl: rails.url, environment: "staging", secret: "sk-rails-graphql-0123456789", protocol: "graphql" });
    await createUpstream(broker, { name: "apq", baseUrl: apq.url, environment: "staging", secret: "sk-apq-graphql-0123456789", protocol: "graphql" });
    await createUpstream(broker, { name: "java", baseUrl: java.url, environment: "staging", secret: "sk-java-graphql-0123456789", protocol: "graphql" });
    const agent = await createAgent(broker, "agent");
    const rules = { allow: [{ operation: "query" }, { operation: "mutation", field: "serviceCreate" }], deny: [{ field: "*Delete" }] };
    await createGrant(broker, { name: "g", agents: [agent.id], upstream: "rails", methods: ["GET", "POST"], paths: ["/graphql"], graphql: rules });
    await createGrant(broker, { name: "a", agents: [agent.id], upstream: "apq", methods: ["GET"], paths: ["/graphql"], graphql: rules });
    await createGrant(broker, { name: "j", agents: [agent.id], upstream: "java", methods: ["POST"], paths: ["/graphql"], graphql: rules });
    token = await tokenFor(broker, agent, { grant: "g" });
    javaToken = await tokenFor(broker, agent, { grant: "j" });
    apqToken = await tokenFor(broker, agent, { grant: "a" });
  });
  afterAll(async () => {
    await broker?.close();
    await rails?.close();
    await java?.close();
    await apq?.close();
    await store?.drop();
  });

  const wipe = encodeURIComponent('mutation { volumeDelete(volumeId: "vol-1") }');
  const harmless = encodeURIComponent("{ volumes { id } }#");

  it.each([
    ["GET", `query=${harmless};query=${wipe}`, undefined],
    ["POST", `x=1;query=${wipe}`, { query: "{ volumes { id } }" }],
  ])(`${title("REQ-59")}: %s ?%s`, async (method, query, body) => {
    const call = broker.http()[method === "GET" ? "get" : "post"](`/proxy/rails/graphql?${query}`).set("authorization", `Bearer ${token}`);
    const res = body ? await call.set("content-type", "application/json").send(JSON.stringify(body)) : await call;
    expect(res.status).toBe(statusOf("REQ-59"));
    expect(res.headers["keyward-error"]).toBe("uninspectable");
    expect(rails.received).toEqual([]);
    expect(rails.state.volumes).toEqual([{ id: "vol-1" }]);
  });

  it("REQ-59: GraphQL calls with nothing for a lenient reading to find are forwarded", async () => {
    const get = await broker.http().get(`/proxy/rails/graphql?query=${encodeURIComponent("{ volumes { id } }")}`).set("authorization", `Bearer ${token}`);
    expect(get.status).toBe(200);
    const post = await broker
      .http()
      .post("/proxy/rails/graphql?trace=1")
      .set("authorization", `Bearer ${token}`)
      .set("content-type", "application/json")
      .send(JSON.stringify({ query: "{ volumes { id } }" }));
    expect(post.status).toBe(200);
    expect(post.body).toEqual({ data: { volumes: [{ id: "vol-1" }] } });
  });

  const postJava = (query: string) =>
    broker.http().post("/proxy/java/graphql").set("authorization", `Bearer ${javaToken}`).set("content-type", "application/json").send(JSON.stringify({ query }));

  it.each([
    ["U+2028", "\u2028"],
    ["U+2029", "\u2029"],
  ])(`${title("REQ-60")}: %s`, async (_name, separator) => {
    const res = await postJava(`mutation { serviceCreate(name: "a") # ${separator} volumeDelete(volumeId: "vol-1")\n }`);
    expect(res.status).toBe(statusOf("REQ-60"));
    expect(res.headers["keyward-error"]).toBe("uninspectable");
    expect(java.received).toEqual([]);
    expect(java.state.volumes).toEqual([{ id: "vol-1" }]);
  });

  it("REQ-60: a comment ended by a line feed is read alike and forwarded", async () => {
    const res = await postJava('mutation { serviceCreate(name: "a") # volumeDelete(volumeId: "vol-1")\n }');
    expect(res.status).toBe(200);
    expect(java.state.volumes).toEqual([{ id: "vol-1" }]);
  });

  it(title("REQ-63"), async () => {
    const harmless = "{ volumes { id } }";
    const wipe = 'mutation { volumeDelete(volumeId: "vol-1") }';
    stored.set(sha256(wipe), wipe);
    const persisted = (hash: string) => `"persistedQuery":{"version":1,"sha256Hash":"${hash}"}`;
    const extensions = `{${persisted(sha256(wipe))},${persisted(sha256(harmless))}}`;
    const res = await broker
      .http()
      .get(`/proxy/apq/graphql?query=${encodeURIComponent(harmless)}&extensions=${encodeURIComponent(extensions)}`)
      .set("authorization", `Bearer ${apqToken}`);
    expect(res.status).toBe(statusOf("REQ-63"));
    expect(res.headers["keyward-error"]).toBe("uninspectable");
    expect(apq.received).toEqual([]);
    expect(apq.state.volumes).toEqual([{ id: "vol-1" }]);
    // One hash, the document's own: forwarded.
    const one = await broker
      .http()
      .get(`/proxy/apq/graphql?query=${encodeURIComponent(harmless)}&extensions=${encodeURIComponent(`{${persisted(sha256(harmless))}}`)}`)
      .set("authorization", `Bearer ${apqToken}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual({ data: { volumes: [{ id: "vol-1" }] } });
  });
});
