import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { startUpstream } from "../helpers/upstream.js";
import { createAgent, createGrant, createUpstream, tokenFor } from "../helpers/scenario.js";

const SECRET = "policy-test-secret-" + "q".repeat(20);

/** Policy written through the admin API: validated when written, simulated without calling upstream, enforced for JSON-RPC. */
describe("policy administration", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let grantId: string;

  beforeAll(async () => {
    upstream = await startUpstream((req, res, body) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { url: req.url, bodyLength: body.length } }));
    });
    store = newStore();
    broker = await startBroker(store);
    await createUpstream(broker, { name: "rail", baseUrl: `${upstream.url}/graphql`, environment: "staging", secret: SECRET, protocol: "graphql", presets: ["railway"] });
    await createUpstream(broker, { name: "chain", baseUrl: upstream.url, environment: "staging", secret: SECRET, protocol: "jsonrpc" });
    await createUpstream(broker, { name: "disks", baseUrl: `${upstream.url}/v1`, environment: "staging", secret: SECRET, presets: ["render"] });
    agent = await createAgent(broker, "policy-agent");
    grantId = (
      await createGrant(broker, {
        name: "rail-ops",
        agents: [agent.id],
        upstream: "rail",
        methods: ["GET", "POST"],
        paths: ["/", "/**"],
        graphql: { allow: [{ operation: "query" }, { operation: "mutation" }], deny: [{ field: "*Delete" }] },
        allowProtected: ["railway.volumeInstanceBackupRestore"],
      })
    ).id;
    await createGrant(broker, {
      name: "chain-read",
      agents: [agent.id],
      upstream: "chain",
      methods: ["POST"],
      paths: ["/"],
      jsonrpc: { allow: [{ method: "eth_get*" }, { method: "eth_call" }], deny: [{ method: "eth_getLogs" }] },
    });
    await createGrant(broker, { name: "disks-all", agents: [agent.id], upstream: "disks", methods: ["GET", "DELETE"], paths: ["/**"] });
  });

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  describe("upstreams", () => {
    it("get the presets known for their host, and must fit them", async () => {
      const misfit = await broker.admin("post", "/v1/upstreams", {
        name: "railway-real",
        baseUrl: "https://backboard.railway.com/graphql/v2",
        environment: "production",
        auth: { type: "header", header: "Authorization", template: "Bearer {secret}" },
        secret: SECRET,
      });
      expect(misfit.status).toBe(400);
      expect(misfit.body.error).toMatchObject({ code: "policy_misfit", details: [expect.stringMatching(/preset railway .* needs protocol "graphql"/)] });

      const detected = await broker.admin("post", "/v1/upstreams", {
        name: "railway-real",
        baseUrl: "https://backboard.railway.com/graphql/v2",
        environment: "production",
        protocol: "graphql",
        auth: { type: "header", header: "Authorization", template: "Bearer {secret}" },
        secret: SECRET,
      });
      expect(detected.status).toBe(201);
      expect(detected.body).toMatchObject({ protocol: "graphql", presets: ["railway"] });

      const optedOut = await broker.admin("patch", "/v1/upstreams/railway-real", { presets: [] });
      expect(optedOut.body.presets).toEqual([]);
      expect((await broker.admin("patch", "/v1/upstreams/railway-real", { presets: ["aws-rds"] })).status).toBe(400);
      expect((await broker.admin("patch", "/v1/upstreams/railway-real", { protocol: "soap" })).status).toBe(400);
      expect((await broker.admin("patch", "/v1/upstreams/railway-real", { presets: ["nope"] })).status).toBe(400);
    });
  });

  describe("grants", () => {
    it("show their policy, with environments defaulting to the upstream's", async () => {
      const res = await broker.admin("get", `/v1/grants/${grantId}`);
      expect(res.body).toMatchObject({
        environments: ["staging"],
        requiresApproval: false,
        destructive: [],
        graphql: { allow: [{ operation: "query" }, { operation: "mutation" }], deny: [{ field: "*Delete" }] },
        jsonrpc: null,
        allowProtected: ["railway.volumeInstanceBackupRestore"],
        budgets: null,
      });
    });

    const base = { agents: [], methods: ["POST"], paths: ["/**"] };
    it.each([
      ["graphql rules on an http upstream", { ...base, upstream: "disks", graphql: { allow: [{ operation: "query" }] } }, "policy_misfit"],
      ["jsonrpc rules on a graphql upstream", { ...base, upstream: "rail", jsonrpc: { allow: [{ method: "*" }] } }, "policy_misfit"],
      ["a protected operation the upstream's presets do not have", { ...base, upstream: "disks", allowProtected: ["railway.volumeDelete"] }, "policy_misfit"],
      ["environments without the upstream's", { ...base, upstream: "disks", environments: ["production"] }, "policy_misfit"],
      ["an unknown member in a GraphQL rule", { ...base, upstream: "rail", graphql: { allow: [{ operation: "query", fields: "x" }] } }, "validation_failed"],
      ["an unknown protected operation", { ...base, upstream: "rail", allowProtected: ["railway.everything"] }, "validation_failed"],
      ["an empty budget", { ...base, upstream: "rail", budgets: { perToken: {} } }, "validation_failed"],
    ])("refuse %s", async (_name, body, code) => {
      const res = await broker.admin("post", "/v1/grants", { name: `bad-${Math.random()}`, ...body });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(code);
    });

    it("are re-checked against their upstream on every edit", async () => {
      const res = await broker.admin("patch", `/v1/grants/${grantId}`, { environments: ["production"] });
      expect(res.status).toBe(400);
      const cleared = await broker.admin("patch", `/v1/grants/${grantId}`, { budgets: { perGrant: { maxCalls: 1000 } } });
      expect(cleared.body.budgets).toEqual({ perGrant: { maxCalls: 1000 } });
      expect((await broker.admin("patch", `/v1/grants/${grantId}`, { budgets: null })).body.budgets).toBeNull();
    });
  });

  describe("POST /v1/policy/simulate", () => {
    const simulate = (body: object, key = broker.adminKey) => broker.http().post("/v1/policy/simulate").set("authorization", `Bearer ${key}`).send(body);
    const gqlRequest = (query: string) => ({
      method: "POST",
      url: "/proxy/rail/",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query }),
    });

    it("says which rule allows, without calling the upstream", async () => {
      const before = upstream.received.length;
      const res = await simulate({ grant: "rail-ops", request: gqlRequest("{ volumes { id } }") });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ allow: true, rule: "POST /; graphql.allow[0] query volumes", destructive: 0, upstream: "rail", environment: "staging", path: "/" });
      expect(upstream.received.length).toBe(before);
    });

    it("says which rule denies", async () => {
      const res = await simulate({ grant: grantId, request: gqlRequest('mutation { volumeDelete(volumeId: "v") }') });
      expect(res.body).toMatchObject({ allow: false, code: "deny_rule", reason: "graphql.deny[0] matches mutation volumeDelete" });
    });

    it("protected operations need a human: simulate with and without approval", async () => {
      const request = gqlRequest('mutation { volumeInstanceBackupRestore(id: "b") }');
      expect((await simulate({ grant: "rail-ops", request })).body).toMatchObject({ allow: false, code: "approval_required" });
      expect((await simulate({ grant: "rail-ops", approved: true, request })).body).toMatchObject({
        allow: true,
        rule: "POST /; graphql.allow[1] mutation volumeInstanceBackupRestore (allowProtected railway.volumeInstanceBackupRestore)",
        destructive: 1,
      });
    });

    it("refuses a method override as the proxy does, in the query or in a form body", async () => {
      for (const url of ["/proxy/disks/disks/d1?.method=DELETE", "/proxy/disks/disks/d1?%5Bmethod=DELETE", "/proxy/disks/disks/d1?X-HTTP-Method-Override=PUT"]) {
        expect((await simulate({ grant: "disks-all", request: { method: "GET", url } })).body).toMatchObject({ allow: false, code: "method_override" });
      }
      const form = { method: "POST", url: "/proxy/rail/", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "_method=DELETE" };
      expect((await simulate({ grant: "rail-ops", request: form })).body).toMatchObject({ allow: false, code: "method_override", reason: 'form parameter "_method" could override the method' });
    });

    it("simulates an issued token by its jti, with its own narrower capabilities", async () => {
      const token = await tokenFor(broker, agent, { grant: "disks-all", methods: ["GET"] });
      const jti = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti;
      expect((await simulate({ jti, request: { method: "GET", url: "/proxy/disks/disks/d1" } })).body).toMatchObject({ allow: true, rule: "GET /**" });
      expect((await simulate({ jti, request: { method: "DELETE", url: "/proxy/disks/disks/d1" } })).body).toMatchObject({
        allow: false,
        code: "method_not_granted",
        reason: "the token does not allow DELETE",
      });
      // The grant alone would still refuse: the disk is protected by the Render preset (base path /v1 included).
      expect((await simulate({ grant: "disks-all", request: { method: "DELETE", url: "/proxy/disks/disks/d1" } })).body).toMatchObject({
        allow: false,
        code: "protected_operation",
      });
    });

    it.each([
      ["both a grant and a jti", { grant: "rail-ops", jti: "x", request: { method: "GET", url: "/proxy/rail/" } }, 400],
      ["neither", { request: { method: "GET", url: "/proxy/rail/" } }, 400],
      ["approved on a token", { jti: "x", approved: true, request: { method: "GET", url: "/proxy/rail/" } }, 400],
      ["an unknown field", { grant: "rail-ops", request: { method: "GET", url: "/proxy/rail/" }, forward: true }, 400],
      ["a URL outside the proxy", { grant: "rail-ops", request: { method: "GET", url: "/v1/grants" } }, 400],
      ["an unknown upstream", { grant: "rail-ops", request: { method: "GET", url: "/proxy/nowhere/" } }, 404],
      ["an unknown token", { jti: "no-such-jti", request: { method: "GET", url: "/proxy/rail/" } }, 404],
      ["an unknown grant", { grant: "no-such-grant", request: { method: "GET", url: "/proxy/rail/" } }, 404],
    ])("refuses %s", async (_name, body, status) => {
      expect((await simulate(body)).status).toBe(status);
    });

    it("is for admins only", async () => {
      const security = (await broker.admin("post", "/v1/admin-keys", { name: "sec", role: "security" })).body.key;
      expect((await simulate({ grant: "rail-ops", request: { method: "GET", url: "/proxy/rail/" } }, security)).status).toBe(403);
    });
  });

  describe("JSON-RPC through the proxy", () => {
    let token: string;
    beforeAll(async () => {
      token = await tokenFor(broker, agent, { grant: "chain-read" });
    });
    const rpc = (body: unknown) =>
      broker.http().post("/proxy/chain/").set("authorization", `Bearer ${token}`).set("content-type", "application/json").send(JSON.stringify(body));

    it("forwards allowed calls and batches", async () => {
      expect((await rpc({ jsonrpc: "2.0", method: "eth_getBalance", params: ["0x0"], id: 1 })).status).toBe(200);
      expect((await rpc([{ jsonrpc: "2.0", method: "eth_call", id: 1 }, { jsonrpc: "2.0", method: "eth_getCode", id: 2 }])).status).toBe(200);
    });

    it("denies a batch if any call in it is denied or not allowed, forwarding nothing", async () => {
      const before = upstream.received.length;
      const denied = await rpc([{ jsonrpc: "2.0", method: "eth_call", id: 1 }, { jsonrpc: "2.0", method: "eth_getLogs", id: 2 }]);
      expect(denied.status).toBe(403);
      // A JSON-RPC refusal (src/proxy/refusals.ts): one error per member of the batch, each with its id.
      expect(denied.body.map((r: { id: number }) => r.id)).toEqual([1, 2]);
      expect(denied.body[1].error.data.reason).toBe("jsonrpc.deny[0] matches method eth_getLogs");
      const unknown = await rpc([{ jsonrpc: "2.0", method: "eth_call", id: 1 }, { jsonrpc: "2.0", method: "eth_sendRawTransaction", id: 2 }]);
      expect(unknown.body[0].error.data.reason).toBe("no jsonrpc.allow rule matches method eth_sendRawTransaction");
      expect(upstream.received.length).toBe(before);
    });
  });
});
