import { request as httpRequest } from "node:http";
import fc from "fast-check";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, isErrorCode } from "../../src/sdk/codes.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const SECRET = "simulate-agrees-secret-" + "s".repeat(20);

type Answer = { allow: boolean; code: string | null };

/**
 * The policy simulator (POST /v1/policy/simulate) and the proxy take the same steps before deciding
 * (prepareCall() in src/proxy/prepare.ts, then decide()): on any call, they must agree on allow or
 * deny and, for refusals of those steps, on the code. Random calls mix the path tricks the proxy
 * refuses (dot segments, encoded slashes, control characters, _method) with ordinary ones.
 */
describe("the policy simulator agrees with the proxy", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"data":{}}');
    });
    store = newStore();
    broker = await startBroker(store, { KEYWARD_POLICY_MAX_INSPECT_BYTES: "400" });
    await createUpstream(broker, { name: "api", baseUrl: `${upstream.url}/base`, environment: "staging", secret: SECRET, presets: ["render"] });
    await createUpstream(broker, { name: "gql", baseUrl: `${upstream.url}/graphql`, environment: "staging", secret: SECRET, protocol: "graphql" });
    const agent = await createAgent(broker, "simulated-agent");
    await createGrant(broker, {
      name: "api",
      agents: [agent.id],
      upstream: "api",
      methods: ["GET", "POST", "DELETE"],
      paths: ["/v1/**", "/v2/items/*"],
      deny: [{ path: "/v1/admin/**" }, { method: "DELETE", path: "/v1/keep/**" }],
    });
    await createGrant(broker, {
      name: "gql",
      agents: [agent.id],
      upstream: "gql",
      methods: ["POST", "GET"],
      paths: ["/", "/**"],
      graphql: { allow: [{ operation: "query" }, { operation: "mutation", field: "create*" }], deny: [{ field: "*Delete" }] },
    });
    tokens.api = await tokenFor(broker, agent, { grant: "api" });
    tokens.narrow = await tokenFor(broker, agent, { grant: "api", methods: ["GET"], paths: ["/v1/items/**"] });
    tokens.gql = await tokenFor(broker, agent, { grant: "gql" });
  }, 60_000);

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  /** The call as the agent sends it, over a raw socket: no client normalises the path. */
  const viaProxy = (token: string, method: string, url: string, body: string | undefined): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const { hostname, port } = new URL(broker.url);
      const req = httpRequest(
        {
          hostname,
          port,
          method,
          path: url,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined && { "content-type": "application/json", "content-length": Buffer.byteLength(body) }),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => {
            const code = res.headers["keyward-error"];
            resolve({ allow: code === undefined && res.statusCode === 200, code: typeof code === "string" ? code : null });
          });
        },
      );
      req.on("error", reject);
      req.end(body);
    });

  const viaSimulator = async (token: string, method: string, url: string, body: string | undefined): Promise<Answer> => {
    const res = await broker.admin("post", "/v1/policy/simulate", {
      jti: decodeJwt(token).jti,
      request: { method, url, headers: body === undefined ? {} : { "content-type": "application/json" }, ...(body !== undefined && { body }) },
    });
    expect(res.status, res.text).toBe(200);
    return { allow: res.body.allow, code: res.body.allow ? null : res.body.code };
  };

  /** Codes both raise from the same steps; others (the router's, the forward's) are the proxy's alone. */
  const sharedStep = (code: string | null) => code !== null && isErrorCode(code) && ["prepare", "decide"].includes(ERROR_CODES[code].step);

  const agree = async (token: string, method: string, url: string, body: string | undefined) => {
    const proxied = await viaProxy(token, method, url, body);
    const simulated = await viaSimulator(token, method, url, body);
    const what = `${method} ${url} ${body ?? ""}: proxy ${JSON.stringify(proxied)}, simulator ${JSON.stringify(simulated)}`;
    if (proxied.code === "invalid_url") {
      // The router could not decode the URL: the simulator, given the same text, must not allow it either.
      expect(simulated.allow, what).toBe(false);
      return;
    }
    expect(simulated.allow, what).toBe(proxied.allow);
    if (sharedStep(proxied.code) || sharedStep(simulated.code)) expect(simulated.code, what).toBe(proxied.code);
  };

  const segment = fc.oneof(
    fc.constantFrom("v1", "v2", "items", "admin", "keep", "disks", "x", "..", ".", "%2e%2e", "%2E", "a%2fb", "a%5cb", "a%00", "%20", "a.", "%c3%a9", "%ff", "~user"),
    fc.stringMatching(/^[a-z0-9]{1,6}$/),
  );
  const path = fc.array(segment, { minLength: 0, maxLength: 5 }).map((segments) => "/" + segments.join("/"));
  const query = fc.constantFrom("", "?a=1", "?_method=DELETE", "?x=1&%5Fmethod=put", "?_METHOD", "?method=DELETE", "?q=%2e%2e");

  it("on random REST calls", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("api", "narrow"), fc.constantFrom("GET", "POST", "DELETE", "PUT", "HEAD"), path, query, async (token, method, p, q) => {
        await agree(tokens[token]!, method, `/proxy/api${p}${q}`, method === "POST" ? "{}" : undefined);
      }),
      { numRuns: 150 },
    );
  }, 120_000);

  it("on random GraphQL calls, bodies inspected on both sides", async () => {
    const field = fc.constantFrom("volumes", "createService", "volumeDelete", "serviceDelete", "updateThing", "createVolume");
    const document = fc.oneof(
      fc.tuple(fc.constantFrom("query", "mutation"), field).map(([op, f]) => JSON.stringify({ query: `${op} { ${f} { id } }` })),
      fc.tuple(field, field).map(([a, b]) => JSON.stringify([{ query: `{ ${a} }` }, { query: `mutation { ${b} }` }])),
      fc.constantFrom("{", '{"query":"{ a }","query":"mutation { volumeDelete }"}', JSON.stringify({ query: `{ ${"a".repeat(500)} }` }), "", "[]"),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("", "/", "/v2", "/%2e%2e/x"), document, query, async (p, body, q) => {
        await agree(tokens.gql!, "POST", `/proxy/gql${p}${q}`, body);
      }),
      { numRuns: 100 },
    );
  }, 120_000);
});
