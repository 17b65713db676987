import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startGraphqlUpstream } from "../helpers/graphql-upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

const SECRET = "railway-staging-key-" + "r".repeat(24);
const INSPECT_LIMIT = 4096;

/**
 * The incident replayed against a GraphQL API: one `POST /graphql` carries both harmless queries and the
 * mutation that deleted a volume and its backups. The agent may query and deploy on staging and must
 * never reach volumeDelete, however the call is spelled.
 */
describe("incident over GraphQL", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startGraphqlUpstream>>;
  let token: string;
  let permissiveToken: string;

  beforeAll(async () => {
    upstream = await startGraphqlUpstream();
    store = newStore();
    broker = await startBroker(store, { KEYWARD_POLICY_MAX_INSPECT_BYTES: String(INSPECT_LIMIT) });
    await createUpstream(broker, {
      name: "railway-staging",
      baseUrl: upstream.url,
      environment: "staging",
      secret: SECRET,
      protocol: "graphql",
      presets: ["railway"],
    });
    const agent = await createAgent(broker, "ci-agent");
    await createGrant(broker, {
      name: "deploy-staging",
      agents: [agent.id],
      upstream: "railway-staging",
      methods: ["GET", "POST"],
      paths: ["/graphql/v2"],
      graphql: {
        allow: [{ operation: "query" }, { operation: "mutation", field: "serviceCreate" }],
        deny: [{ field: "*Delete" }, { field: "backup*" }],
      },
    });
    // Allows every mutation: only the backup protection preset stands in the way.
    await createGrant(broker, {
      name: "careless",
      agents: [agent.id],
      upstream: "railway-staging",
      methods: ["POST"],
      paths: ["/graphql/v2"],
      graphql: { allow: [{ operation: "query" }, { operation: "mutation" }] },
    });
    token = await tokenFor(broker, agent, { grant: "deploy-staging" });
    permissiveToken = await tokenFor(broker, agent, { grant: "careless" });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const post = (body: unknown, t = token, contentType = "application/json") =>
    broker
      .http()
      .post("/proxy/railway-staging/graphql/v2")
      .set("authorization", `Bearer ${t}`)
      .set("content-type", contentType)
      .send(typeof body === "string" ? body : JSON.stringify(body));

  // Refusals come back as GraphQL errors (src/proxy/refusals.ts), the Keyward code in extensions and the header.
  type GraphqlRefusal = { status: number; headers: Record<string, string>; body: { errors: { extensions: { code: string; reason: string } }[] } };
  const expectDenied = async (res: GraphqlRefusal, reason: RegExp, code = "deny_rule") => {
    expect(res.status).toBe(403);
    expect(res.headers["keyward-error"]).toBe(code);
    expect(res.body.errors[0]!.extensions.code).toBe(code);
    expect(res.body.errors[0]!.extensions.reason).toMatch(reason);
  };

  it("forwards queries with the real key and the exact bytes the agent sent", async () => {
    const body = '{ "query" :  "{ volumes { id name backups } }",\n  "variables": {} }';
    const res = await post(body);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ data: { volumes: [{ id: "vol-1", name: "postgres-data", backups: ["daily-1", "daily-2"] }] } });
    const received = upstream.received.at(-1)!;
    expect(received.body.toString("utf8")).toBe(body);
    expect(received.headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("forwards a chunked body (no Content-Length) byte for byte", async () => {
    const body = JSON.stringify({ query: "{ services { id } }" });
    const { port } = new URL(broker.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, method: "POST", path: "/proxy/railway-staging/graphql/v2", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.write(body.slice(0, 10));
      req.end(body.slice(10));
    });
    expect(status).toBe(200);
    expect(upstream.received.at(-1)!.body.toString("utf8")).toBe(body);
  });

  it("allows a GET query from ?query=", async () => {
    const res = await broker
      .http()
      .get("/proxy/railway-staging/graphql/v2?query=" + encodeURIComponent("{ services { name } }"))
      .set("authorization", `Bearer ${token}`);
    expect(res.status).toBe(200);
    expect(res.body.data.services[0].name).toBe("api");
  });

  it("allows the mutation the grant names", async () => {
    const res = await post({ query: 'mutation { serviceCreate(name: "worker") { id name } }' });
    expect(res.status).toBe(200);
    expect(res.body.data.serviceCreate.name).toBe("worker");
  });

  describe("volumeDelete never reaches the upstream", () => {
    let before: number;
    beforeAll(() => {
      before = upstream.received.length;
    });

    it("directly", async () => {
      await expectDenied(await post({ query: 'mutation { volumeDelete(volumeId: "vol-1") }' }), /graphql.deny\[0\] matches mutation volumeDelete/);
    });
    it("behind an alias", async () => {
      await expectDenied(await post({ query: 'mutation { serviceCreate: volumeDelete(volumeId: "vol-1") }' }), /mutation volumeDelete/);
    });
    it("in a batch", async () => {
      const batch = [{ query: "{ volumes { id } }" }, { query: 'mutation { volumeDelete(volumeId: "vol-1") }' }];
      await expectDenied(await post(batch), /mutation volumeDelete/);
    });
    it("inside a second operation, whichever operationName selects", async () => {
      const query = 'query Look { volumes { id } } mutation Wipe { volumeDelete(volumeId: "vol-1") }';
      await expectDenied(await post({ query, operationName: "Look" }), /mutation volumeDelete/);
      await expectDenied(await post({ query, operationName: "Wipe" }), /mutation volumeDelete/);
    });
    it("with several operations and no operationName", async () => {
      await expectDenied(await post({ query: "query A { volumes { id } } query B { services { id } }" }), /no operationName/, "uninspectable");
    });
    it("through an inline fragment on the mutation type", async () => {
      await expectDenied(await post({ query: 'mutation { ... on Mutation { volumeDelete(volumeId: "vol-1") } }' }), /mutation volumeDelete/);
    });
    it("through a named fragment", async () => {
      const query = 'mutation { ...Cleanup } fragment Cleanup on Mutation { volumeDelete(volumeId: "vol-1") }';
      await expectDenied(await post({ query }), /mutation volumeDelete/);
    });
    it("as a persisted query Keyward cannot see", async () => {
      const hash = upstream.persist('mutation { volumeDelete(volumeId: "vol-1") }');
      await expectDenied(await post({ extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }), /persisted query/, "uninspectable");
      await expectDenied(await post({ query: "{ volumes { id } }", extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }), /hash does not match/, "uninspectable");
    });
    it("as application/graphql", async () => {
      await expectDenied(await post('mutation { volumeDelete(volumeId: "vol-1") }', token, "application/graphql"), /mutation volumeDelete/);
    });
    it("over GET", async () => {
      const res = await broker
        .http()
        .get("/proxy/railway-staging/graphql/v2?query=" + encodeURIComponent('mutation { volumeDelete(volumeId: "vol-1") }'))
        .set("authorization", `Bearer ${token}`);
      await expectDenied(res, /mutation volumeDelete/);
    });
    it("with a duplicated JSON key", async () => {
      await expectDenied(await post('{"query":"{ volumes { id } }","query":"mutation { volumeDelete(volumeId: \\"vol-1\\") }"}'), /duplicate JSON key/, "uninspectable");
    });
    it("with a document that does not parse", async () => {
      await expectDenied(await post({ query: 'mutation { volumeDelete(volumeId: "vol-1")' }), /does not parse/, "uninspectable");
    });
    it("nor the backups on their own", async () => {
      await expectDenied(await post({ query: 'mutation { volumeInstanceBackupDelete(volumeId: "vol-1") }' }), /graphql.deny\[0\]/);
    });
    it("under a grant that allows every mutation: the backup protection preset", async () => {
      await expectDenied(await post({ query: 'mutation { volumeDelete(volumeId: "vol-1") }' }, permissiveToken), /railway.volumeDelete .* protected/, "protected_operation");
      await expectDenied(
        await post({ query: 'mutation { volumeInstanceBackupDelete(volumeId: "vol-1") }' }, permissiveToken),
        /railway.volumeInstanceBackupDelete/,
        "protected_operation",
      );
    });

    it("and the volume and its backups are still there", () => {
      expect(upstream.received.length).toBe(before);
      expect(upstream.state.volumes).toEqual([{ id: "vol-1", name: "postgres-data", backups: ["daily-1", "daily-2"] }]);
    });
  });

  it("refuses a body over the inspection limit with 413, forwarding nothing", async () => {
    const before = upstream.received.length;
    const res = await post({ query: "{ volumes { id } }", variables: { pad: "x".repeat(INSPECT_LIMIT) } });
    expect(res.status).toBe(413);
    expect(res.body.errors[0].extensions.code).toBe("payload_too_large");
    expect(upstream.received.length).toBe(before);
  });

  it("audits every denial with the rule or reason", async () => {
    const res = await broker.admin("get", "/v1/audit?kind=proxy&decision=deny&limit=100");
    // The code in reason (filterable), the specifics in details.
    const reasons = res.body.events.map((e: { reason: string; details: { reason: string } }) => [e.reason, e.details.reason]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        ["deny_rule", expect.stringMatching(/graphql.deny\[0\] matches mutation volumeDelete/)],
        ["uninspectable", expect.stringMatching(/persisted query/)],
      ]),
    );
    const allowed = await broker.admin("get", "/v1/audit?kind=proxy&decision=allow&limit=100");
    expect(allowed.body.events.map((e: { reason: string }) => e.reason)).toContain("POST /graphql/v2; graphql.allow[1] mutation serviceCreate");
  });
});
