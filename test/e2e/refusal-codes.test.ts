import { existsSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode } from "../../src/sdk/codes.js";
import { newStore, startBroker, type Store, type TestBroker } from "../helpers/broker.js";
import { basic, createAgent, createGrant, createUpstream, issueToken, tokenFor } from "../helpers/scenario.js";
import { startUpstream } from "../helpers/upstream.js";

const SECRET = "refusal-codes-secret-" + "r".repeat(20);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Codes this file does not provoke, each with where it is tested instead. Every other code of the
 * catalogue must have a case below: adding a code to the catalogue fails this file until it has one.
 */
const ELSEWHERE: Partial<Record<ErrorCode, string>> = {
  request_aborted: "test/e2e/client-disconnect.test.ts (the client goes away mid-body)",
  request_timeout: "test/security/requests.test.ts (a client that never finishes its request, on a raw socket)",
  headers_too_large: "test/security/requests.test.ts REQ-22 (oversized headers, answered by Node's parser)",
  bad_request: "test/security/requests.test.ts REQ-12 (lower-case methods, on a raw socket)",
  revocation_state_stale: "test/e2e/replicas.test.ts (a replica whose change feed stops)",
  audit_unavailable: "test/e2e/audit-log.test.ts and test/faults/audit-exactly-once.test.ts (the audit log cannot be written)",
  host_mismatch: "test/e2e/forward-proxy.test.ts (a Host header naming another origin)",
  client_auth_busy: "test/security/tokens.test.ts TOK-22 (a flood of token requests with a wrong secret)",
  invalid_grant: "test/security/tokens.test.ts TOK-21: only as the OAuth error of an exchange from a spent token, whose Keyward code is budget_exceeded",
  response_too_large_to_redact: "test/e2e/redaction-rules.test.ts (a body beyond the redaction limit on a path a JSON rule reads)",
  response_unredactable: "test/e2e/redaction-rules.test.ts (an HTML answer on a path a JSON rule reads)",
  grant_gone: "test/unit/policy/decide.test.ts: deleting a grant revokes its tokens first, so a live call reads token_revoked",
  rules_misfit: "test/unit/policy/decide-operations.test.ts: grants are validated against their upstream on every write, so no stored grant misfits",
  database_unavailable: "test/faults/database.test.ts",
  not_ready: "test/unit/ops/readiness.test.ts (GET /readyz with each check failing)",
  console_not_built: "test/e2e/console-api.test.ts",
  internal_error: "test/unit/oauth/errors.test.ts: nothing should raise it; an unexpected failure becomes it, with no detail",
  approval_invalid: "test/security/approvals.test.ts TOK-33 (an approval collected after its grant moved to another upstream); test/unit/approvals/approvals.test.ts for the race of an approval no longer being collected when its token is minted",
  too_many_pending_approvals: "test/security/approvals.test.ts TOK-34 (an agent with as many distinct token requests held as it may)",
  no_token: "test/e2e/sdk.test.ts (raised in the agent's process)",
  approval_denied: "test/e2e/sdk.test.ts (raised in the agent's process)",
  unreachable: "test/e2e/sdk.test.ts (raised in the agent's process; clients/python/tests/test_client.py for the Python client)",
  unexpected_answer: "test/unit/sdk/unexpected-answer.test.ts (raised in the agent's process)",
};

type Answer = { status: number; headers: Record<string, string>; body: { error?: { code?: string; reason?: string } } };
type Case = {
  /** Makes the call and returns the broker's answer. */
  call: () => Promise<Answer>;
  /** On the OAuth endpoints: RFC 6749's `error` in the body, when it is not the code itself (the code is in Keyward-Error). */
  oauthError?: string;
  /**
   * The audit event kind the refusal is recorded under; null when it is refused before any route audits.
   * A call that fails after it was allowed (credential, forward) is recorded as the allowed call's response.
   */
  audited: "proxy" | "proxy.response" | "token.refused" | null;
  /**
   * The forward proxy's own refusals carry no request id to the client: their event is the one with the
   * code written after the call was made.
   */
  byForwardProxy?: true;
};

/**
 * Sends one raw request to the forward proxy (whose refusals come before any HTTP routing, some on a
 * bare socket) and reads the answer until the proxy closes the connection.
 */
async function rawExchange(port: number, request: string): Promise<Answer> {
  const socket = connect(port, "127.0.0.1");
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    socket.on("data", (chunk) => chunks.push(chunk)).once("close", () => resolve()).once("error", reject);
    socket.write(request);
  });
  const text = Buffer.concat(chunks).toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  const [statusLine, ...headerLines] = text.slice(0, end).split("\r\n");
  const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
  return { status: Number(statusLine!.split(" ")[1]), headers, body: JSON.parse(text.slice(end + 4)) };
}

describe("refusal codes: every code of the catalogue, its status, the agent's error and the audit event", () => {
  let store: Store;
  let broker: TestBroker;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let agent: Awaited<ReturnType<typeof createAgent>>;
  let other: Awaited<ReturnType<typeof createAgent>>;
  const tokens: Record<string, string> = {};
  let closedPort: number;

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      if (req.url?.startsWith("/v1/slow")) return void setTimeout(() => res.end("late"), 3000);
      // A coding Keyward cannot decode, so it cannot redact the body either.
      if (req.url?.startsWith("/v1/compressed")) {
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "compress" });
        return void res.end("not really LZW");
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ data: { ok: true } }));
    });
    closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    store = newStore();
    broker = await startBroker(store, {
      KEYWARD_CLOCK_SKEW_SECONDS: "0",
      KEYWARD_UPSTREAM_TIMEOUT_MS: "1000",
      KEYWARD_POLICY_MAX_INSPECT_BYTES: "2000",
      KEYWARD_FORWARD_PROXY_PORT: "0",
    });
    await createUpstream(broker, { name: "api", baseUrl: upstream.url, environment: "staging", secret: SECRET });
    await createUpstream(broker, { name: "moving", baseUrl: upstream.url, environment: "staging", secret: SECRET });
    await createUpstream(broker, { name: "disks", baseUrl: upstream.url, environment: "staging", secret: SECRET, presets: ["render"] });
    await createUpstream(broker, { name: "gql", baseUrl: `${upstream.url}/graphql`, environment: "staging", secret: SECRET, protocol: "graphql" });
    await createUpstream(broker, { name: "gone", baseUrl: `http://127.0.0.1:${closedPort}`, environment: "staging", secret: SECRET });
    await createUpstream(broker, {
      name: "nokey",
      baseUrl: upstream.url,
      environment: "staging",
      secret: SECRET,
      auth: { type: "oauth2-client-credentials", tokenUrl: `http://127.0.0.1:${closedPort}/token`, clientId: "c" },
    });
    agent = await createAgent(broker, "coded-agent");
    other = await createAgent(broker, "other-agent");
    const agents = [agent.id];
    const rest = { agents, methods: ["GET", "POST"], paths: ["/v1/**"] };
    const apiGrant = await createGrant(broker, { name: "api", upstream: "api", ...rest, deny: [{ path: "/v1/admin/**" }] });
    await createGrant(broker, { name: "moving", upstream: "moving", ...rest });
    const grantIds = {
      shared: (await createGrant(broker, { name: "shared", upstream: "api", ...rest, agents: [agent.id, other.id] })).id,
    };
    await createGrant(broker, { name: "budget", upstream: "api", ...rest, budgets: { perToken: { maxCalls: 1 } } });
    await createGrant(broker, { name: "disks", upstream: "disks", agents, methods: ["GET", "DELETE"], paths: ["/v1/**"] });
    await createGrant(broker, { name: "gql", upstream: "gql", agents, methods: ["POST"], paths: ["/", "/**"], graphql: { allow: [{ operation: "query" }], deny: [] } });
    await createGrant(broker, { name: "gone", upstream: "gone", ...rest });
    await createGrant(broker, { name: "nokey", upstream: "nokey", ...rest });
    await createGrant(broker, { name: "held", upstream: "api", ...rest, requiresApproval: true });
    for (const grant of ["api", "moving", "shared", "budget", "disks", "gql", "gone", "nokey"]) tokens[grant] = await tokenFor(broker, agent, { grant });
    tokens.revoked = await tokenFor(broker, agent, { grant: "api" });
    tokens.shortLived = await tokenFor(broker, agent, { grant: "api", ttlSeconds: 1 });

    // The changes that make live tokens refused: each narrows at once.
    // Tokens for a grant that needs approval wait for a human: the rule is added once they are issued.
    const approvalFor = [{ method: "POST", path: "/v1/deploy" }];
    expect((await broker.admin("patch", `/v1/grants/${apiGrant.id}`, { requiresApprovalFor: approvalFor })).status).toBe(200);
    const { jti } = decodeJwt(tokens.revoked);
    expect((await broker.admin("post", "/v1/revocations", { jti, reason: "refusal-codes test" })).status).toBeLessThan(300);
    expect((await broker.admin("patch", `/v1/grants/${grantIds.shared}`, { agents: [other.id] })).status).toBe(200);
    expect((await broker.admin("patch", "/v1/upstreams/moving", { environment: "production" })).status).toBe(200);
    await sleep(1500); // shortLived is past its expiry
  }, 60_000);

  afterAll(async () => {
    await broker?.close();
    await upstream?.close();
    await store?.drop();
  });

  const proxy = (token: string | null, method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
    let req = broker.http()[method.toLowerCase() as "get"](path);
    if (token !== null) req = req.set("authorization", `Bearer ${token}`);
    for (const [name, value] of Object.entries(headers)) req = req.set(name, value);
    return body === undefined ? req : req.set("content-type", "application/json").send(body);
  };
  const oauthToken = (client: { clientId: string; clientSecret: string }, form: Record<string, string>) =>
    broker.http().post("/oauth2/token").set("authorization", basic(client.clientId, client.clientSecret)).type("form").send(form);
  const asProxy = (audited: Case["audited"], call: Case["call"]): Case => ({ audited, call });
  const asOAuth = (oauthError: string, call: Case["call"]): Case => ({ audited: null, oauthError, call });
  /** A raw request to the forward proxy's port, with `target` as its request target. */
  const forwardProxy = (audited: Case["audited"], method: string, target: string, headers = "Connection: close\r\n"): Case => ({
    audited,
    byForwardProxy: true,
    call: () => rawExchange(broker.keyward.forwardProxy!.address().port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`),
  });

  const CASES: Partial<Record<ErrorCode, Case>> = {
    invalid_url: asProxy(null, () => proxy(tokens.api!, "GET", "/proxy/api/v1/%zz")),
    not_found: asProxy("proxy", () => proxy(tokens.api!, "GET", "/proxy/no-such-upstream/v1/x")),
    payload_too_large: asProxy("proxy", () => proxy(tokens.gql!, "POST", "/proxy/gql/", JSON.stringify({ query: `{ a${"b".repeat(3000)} }` }))),
    unauthenticated: asProxy("proxy", () => proxy(null, "GET", "/proxy/api/v1/items")),
    invalid_token: asProxy("proxy", () => proxy("aaaa.bbbb.cccc", "GET", "/proxy/api/v1/items")),
    token_expired: asProxy("proxy", () => proxy(tokens.shortLived!, "GET", "/proxy/api/v1/items")),
    token_revoked: asProxy("proxy", () => proxy(tokens.revoked!, "GET", "/proxy/api/v1/items")),
    invalid_path: asProxy("proxy", () => proxy(tokens.api!, "GET", "/proxy/api/v1/a%00b")),
    method_override: asProxy("proxy", () => proxy(tokens.api!, "POST", "/proxy/api/v1/items?_method=DELETE", "{}")),
    agent_not_in_grant: asProxy("proxy", () => proxy(tokens.shared!, "GET", "/proxy/api/v1/items")),
    wrong_upstream: asProxy("proxy", () => proxy(tokens.api!, "GET", "/proxy/moving/v1/items")),
    environment_not_granted: asProxy("proxy", () => proxy(tokens.moving!, "GET", "/proxy/moving/v1/items")),
    approval_required: asProxy("proxy", () => proxy(tokens.api!, "POST", "/proxy/api/v1/deploy", "{}")),
    method_not_granted: asProxy("proxy", () => proxy(tokens.api!, "DELETE", "/proxy/api/v1/items")),
    deny_rule: asProxy("proxy", () => proxy(tokens.api!, "GET", "/proxy/api/v1/admin/users")),
    path_not_granted: asProxy("proxy", () => proxy(tokens.api!, "GET", "/proxy/api/v2/items")),
    protected_operation: asProxy("proxy", () => proxy(tokens.disks!, "DELETE", "/proxy/disks/v1/disks/dsk-1")),
    uninspectable: asProxy("proxy", () => proxy(tokens.gql!, "POST", "/proxy/gql/", JSON.stringify({ query: "{ unclosed" }))),
    operation_denied: asProxy("proxy", () => proxy(tokens.gql!, "POST", "/proxy/gql/", JSON.stringify({ query: "mutation { wipe }" }))),
    budget_exceeded: asProxy("proxy", async () => {
      expect((await proxy(tokens.budget!, "GET", "/proxy/api/v1/items")).status).toBe(200);
      return proxy(tokens.budget!, "GET", "/proxy/api/v1/items");
    }),
    upstream_credential_unavailable: asProxy("proxy.response", () => proxy(tokens.nokey!, "GET", "/proxy/nokey/v1/items")),
    upstream_unreachable: asProxy("proxy.response", () => proxy(tokens.gone!, "GET", "/proxy/gone/v1/items")),
    upstream_timeout: asProxy("proxy.response", () => proxy(tokens.api!, "GET", "/proxy/api/v1/slow")),
    upstream_encoding_unsupported: asProxy("proxy.response", () => proxy(tokens.api!, "GET", "/proxy/api/v1/compressed")),
    // The forward proxy (transparent mode): malformed targets, refused before the token is read.
    invalid_connect_target: forwardProxy("proxy", "CONNECT", "refusal-codes-no-port"),
    use_connect: forwardProxy("proxy", "GET", "https://refusal-codes.example/use-connect"),
    absolute_form_required: forwardProxy("proxy", "GET", "/refusal-codes/origin-form"),
    invalid_request_target: forwardProxy("proxy", "GET", "http://not_a_host.refusal-codes.example/x"),
    // A protocol switch is answered on the bare socket, before any request handling that audits.
    upgrade_not_supported: forwardProxy("proxy", "GET", "http://127.0.0.1/refusal-codes/upgrade", "Upgrade: websocket\r\nConnection: Upgrade\r\n"),
    kill_switch_engaged: asProxy("proxy", async () => {
      expect((await broker.admin("post", "/v1/kill-switch", { reason: "refusal-codes test" })).status).toBeLessThan(300);
      try {
        return await proxy(tokens.api!, "GET", "/proxy/api/v1/items");
      } finally {
        expect((await broker.admin("delete", "/v1/kill-switch", { reason: "refusal-codes test" })).status).toBeLessThan(300);
      }
    }),
    // The token endpoint of the API (Keyward's error shape; /oauth2/token answers RFC 6749's).
    invalid_client: asProxy("token.refused", () => broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, "wrong")).send({ grant: "api" })),
    invalid_scope: asProxy(null, () => broker.http().post("/oauth2/token").set("authorization", basic(agent.clientId, agent.clientSecret)).type("form").send({ grant_type: "client_credentials" })),
    not_in_grant: asProxy("token.refused", () => issueToken(broker, other, { grant: "api" })),
    widening_refused: asProxy("token.refused", () => issueToken(broker, agent, { grant: "moving", methods: ["DELETE"] })),
    // The OAuth endpoints.
    invalid_target: asProxy("token.refused", async () => {
      const { issuer } = (await broker.http().get("/.well-known/oauth-authorization-server")).body as { issuer: string };
      return oauthToken(agent, { grant_type: "client_credentials", scope: "grant:api", resource: `${issuer}/proxy/moving` });
    }),
    invalid_request: asProxy(null, () => oauthToken(agent, { scope: "grant:api" })),
    unsupported_grant_type: asProxy(null, () => oauthToken(agent, { grant_type: "password", scope: "grant:api" })),
    invalid_authorization_details: asProxy(null, () => oauthToken(agent, { grant_type: "client_credentials", scope: "grant:api", authorization_details: "not json" })),
    unauthorized_client: asProxy(null, () => broker.http().post("/oauth2/revoke").set("authorization", basic(other.clientId, other.clientSecret)).type("form").send({ token: tokens.api! })),
    // The OAuth endpoints take POST only: RFC 6749 has no code for it, so the body says invalid_request.
    method_not_supported: asOAuth("invalid_request", () => broker.http().get("/oauth2/token")),
    // Malformed requests, refused before any handler.
    validation_failed: asProxy(null, () => broker.admin("post", "/v1/agents", { name: 42 })),
    invalid_json: asProxy(null, () =>
      broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).set("content-type", "application/json").send('{"grant":'),
    ),
    unsupported_media_type: asProxy(null, () => broker.http().post("/v1/agents").set("authorization", `Bearer ${broker.adminKey}`).type("form").send("name=x")),
    // Approvals: the admin key that created the agent holds its secret, so it may not approve its request.
    self_approval: asProxy(null, async () => {
      const held = await issueToken(broker, agent, { grant: "held" });
      expect(held.status).toBe(202);
      return broker.admin("post", `/v1/approvals/${held.body.approvalId}/approve`, {});
    }),
    // The admin API.
    conflict: asProxy(null, () => broker.admin("post", "/v1/agents", { name: "coded-agent" })),
    forbidden: asProxy(null, async () => {
      const auditor = await broker.admin("post", "/v1/admin-keys", { name: "refusal-codes-auditor", role: "auditor" });
      expect(auditor.status).toBe(201);
      return broker.http().post("/v1/agents").set("authorization", `Bearer ${auditor.body.key}`).send({ name: "not-by-an-auditor" });
    }),
    invalid_key: asProxy(null, () =>
      broker.admin("put", `/v1/agents/${agent.id}/jwks`, { keys: [{ kty: "EC", crv: "P-256", x: "AAAA", y: "AAAA", kid: "unusable", alg: "ES256" }] }),
    ),
    policy_misfit: asProxy(null, () =>
      broker.admin("post", "/v1/grants", { name: "misfit", upstream: "api", agents: [agent.id], methods: ["POST"], paths: ["/**"], graphql: { allow: [{ operation: "query" }], deny: [] } }),
    ),
    unknown_reference: asProxy(null, () =>
      broker.admin("post", "/v1/grants", { name: "dangling", upstream: "no-such-upstream", agents: [agent.id], methods: ["GET"], paths: ["/**"] }),
    ),
    // The forward proxy, with a valid token, to a host no upstream names.
    forward_host_not_allowed: {
      audited: "proxy",
      byForwardProxy: true,
      call: () =>
        rawExchange(
          broker.keyward.forwardProxy!.address().port,
          `GET http://no-upstream.refusal-codes.example/x HTTP/1.1\r\nHost: no-upstream.refusal-codes.example\r\nProxy-Authorization: Bearer ${tokens.api!}\r\nConnection: close\r\n\r\n`,
        ),
    },
    // The forward proxy, without Proxy-Authorization.
    proxy_authentication_required: forwardProxy("proxy", "GET", "http://127.0.0.1:9/refusal-codes/no-token"),
  };

  it("has a case here, or a named test elsewhere, for every code in the catalogue", () => {
    const covered = new Set([...Object.keys(CASES), ...Object.keys(ELSEWHERE)]);
    expect(Object.keys(ERROR_CODES).filter((code) => !covered.has(code))).toEqual([]);
    expect(Object.keys(CASES).filter((code) => code in ELSEWHERE)).toEqual([]);
  });

  it("names, for each code tested elsewhere, test files that exist and assert that code", () => {
    const wrong: string[] = [];
    for (const [code, where] of Object.entries(ELSEWHERE)) {
      const files = where.match(/test\/[\w/.-]+\.test\.ts/g) ?? [];
      if (files.length === 0) wrong.push(`${code}: names no test file`);
      for (const file of files) {
        if (!existsSync(file)) wrong.push(`${code}: ${file} does not exist`);
        else if (!new RegExp(`\\b${code}\\b`).test(readFileSync(file, "utf8"))) wrong.push(`${code}: ${file} never mentions it`);
      }
    }
    expect(wrong).toEqual([]);
  });

  for (const [code, testCase] of Object.entries(CASES) as [ErrorCode, Case][]) {
    it(`${code}: ${ERROR_CODES[code].status}, ${ERROR_CODES[code].step}`, async () => {
      const lastEventBefore = testCase.byForwardProxy ? Number((await broker.admin("get", "/v1/audit?limit=1")).body.events[0]?.id ?? 0) : 0;
      const res = await testCase.call();
      expect(res.status, JSON.stringify(res.body)).toBe(ERROR_CODES[code].status);
      // Every refusal carries the code in the Keyward-Error header. The OAuth endpoints speak RFC 6749 in
      // the body; every other answer is Keyward's shape.
      expect(res.headers["keyward-error"]).toBe(code);
      const body = res.body as { error?: unknown };
      if (typeof body.error === "string") expect(body.error).toBe(testCase.oauthError ?? code);
      else {
        // A refusal on a GraphQL or JSON-RPC upstream answers in its protocol (src/proxy/refusals.ts), the
        // code in its errors' extensions.
        const graphqlCode = (res.body as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code;
        expect(res.body.error?.code ?? graphqlCode).toBe(code);
      }
      if (testCase.audited === null) return;
      const requestId = res.headers["x-request-id"];
      const events = (await broker.admin("get", `/v1/audit?kind=${testCase.audited}&reason=${code}&limit=20`)).body.events as {
        requestId: string;
        id: string;
        decision: string;
        reason: string;
        status: number | null;
        details: { reason?: string } | null;
      }[];
      const event = events.find((e) => (testCase.byForwardProxy ? Number(e.id) > lastEventBefore : e.requestId === requestId));
      expect(event, `the ${testCase.audited} event with reason ${code} for ${testCase.byForwardProxy ? "the forward proxy's refusal" : `request ${requestId}`}`).toMatchObject({
        decision: testCase.audited === "proxy.response" ? "allow" : "deny",
        reason: code,
      });
      // The text is in details: the specifics the agent was told, never just the code again.
      expect(event!.details?.reason).toEqual(expect.any(String));
      if (testCase.audited !== "token.refused") expect(event!.status).toBe(ERROR_CODES[code].status);
    }, 20_000);
  }
});
