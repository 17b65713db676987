import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { basic, createGrant, createUpstream, issueToken } from "../helpers/scenario.js";
import { statusOf, title } from "./cases.js";
import { assertNoSecretLeaks, startScenario, type Scenario } from "./harness.js";

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
type Route = { method: Method; url: string };
const label = (r: Route) => `${r.method} ${r.url}`;
/** The error code of a response: Keyward's `{ error: { code } }`, or OAuth's `{ error }` (RFC 6749) on /oauth2/*. */
const errorCode = (res: { body?: { error?: string | { code?: string } } }) =>
  typeof res.body?.error === "string" ? res.body.error : res.body?.error?.code;

/**
 * Every route the broker serves, read from Fastify's own route tree, so that a route added later is
 * attacked too without anyone remembering to list it here.
 */
function routesOf(s: Scenario): Route[] {
  const tree = s.broker.keyward.app.printRoutes({ commonPrefix: false });
  const routes: Route[] = [];
  const stack: { depth: number; path: string }[] = [];
  for (const line of tree.split("\n")) {
    const m = /^([│\s]*)[├└]── (\S*) \(([^)]+)\)$/.exec(line) ?? /^([│\s]*)[├└]── (\S*)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length;
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop();
    const path = (stack.at(-1)?.path ?? "") + m[2]!;
    stack.push({ depth, path });
    for (const method of (m[3] ?? "").split(", ").filter(Boolean)) {
      if (method !== "HEAD" && method !== "OPTIONS") routes.push({ method: method as Method, url: path });
    }
  }
  return routes;
}

type Permission = "manage" | "revoke" | "read_audit" | "introspect" | "approve";
type Role = "admin" | "security" | "auditor";

/** Which roles hold each permission: the access model this suite enforces, written out independently of src/. */
const ROLES_WITH: Record<Permission, Role[]> = {
  manage: ["admin"],
  revoke: ["admin", "security"],
  read_audit: ["admin", "security", "auditor"],
  introspect: ["admin", "security"],
  approve: ["admin", "security"],
};
const ROLES: Role[] = ["admin", "security", "auditor"];

/**
 * Every admin route and the permission it needs. "finds every admin route" fails on a route the app
 * registers that is missing here (or listed with another permission), so ADM-01 to ADM-03 cover each.
 */
const ADMIN_ROUTES: Record<string, Permission> = {
  "GET /metrics": "read_audit",
  "GET /v1/tokens": "revoke",
  "POST /oauth2/introspect": "introspect",
  "GET /v1/signing-keys": "manage",
  "POST /v1/signing-keys/rotate": "manage",
  "POST /v1/agents/:id/rotate-secret": "manage",
  "PUT /v1/agents/:id/jwks": "manage",
  "GET /v1/upstreams": "manage",
  "POST /v1/upstreams": "manage",
  "GET /v1/upstreams/:name": "manage",
  "PATCH /v1/upstreams/:name": "manage",
  "DELETE /v1/upstreams/:name": "manage",
  "PUT /v1/upstreams/:name/secret": "manage",
  "GET /v1/agents": "manage",
  "POST /v1/agents": "manage",
  "GET /v1/agents/:id": "manage",
  "DELETE /v1/agents/:id": "manage",
  "GET /v1/grants": "manage",
  "POST /v1/grants": "manage",
  "GET /v1/grants/:id": "manage",
  "PATCH /v1/grants/:id": "manage",
  "DELETE /v1/grants/:id": "manage",
  "GET /v1/admin-keys": "manage",
  "POST /v1/admin-keys": "manage",
  "DELETE /v1/admin-keys/:id": "manage",
  "GET /v1/revocations": "revoke",
  "POST /v1/revocations": "revoke",
  "GET /v1/kill-switch": "revoke",
  "POST /v1/kill-switch": "revoke",
  "DELETE /v1/kill-switch": "manage",
  "GET /v1/audit": "read_audit",
  "GET /v1/audit/export": "read_audit",
  "GET /v1/audit/verify": "read_audit",
  "GET /v1/audit/set-aside": "read_audit",
  "GET /v1/audit/stream": "read_audit",
  "GET /v1/audit/activity": "read_audit",
  "GET /v1/environments": "manage",
  "PUT /v1/environments/:name": "manage",
  "GET /v1/approvals": "approve",
  "POST /v1/approvals/:id/approve": "approve",
  "POST /v1/approvals/:id/deny": "approve",
  "POST /v1/policy/simulate": "manage",
  "GET /v1/whoami": "read_audit",
  "GET /v1/directory": "read_audit",
};

/** The admin routes the app declares, with their permission and roles, as its OpenAPI document states them. */
function declaredAdminRoutes(openapi: { paths: Record<string, Record<string, { security?: Record<string, unknown>[]; description?: string }>> }) {
  const declared: Record<string, { permission: string; roles: string[] }> = {};
  for (const [path, operations] of Object.entries(openapi.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      if (!op.security?.some((s) => "adminKey" in s)) continue;
      const m = /role may `(\w+)` \(([^)]*)\)/.exec(op.description ?? "");
      declared[`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`] = { permission: m?.[1] ?? "?", roles: m?.[2]?.split(", ") ?? [] };
    }
  }
  return declared;
}

// Each string carries several payloads of a family, so that every field meets every family at a
// modest request count; a field that refuses one character still gets a clean 4xx, never a 500.
const INJECTIONS = [
  "' OR '1'='1' --",
  `"; DROP TABLE "Agent"; SELECT pg_sleep(10); --`,
  "{{7*7}} ${7*7} <%= 7*7 %> #{7*7}",
  '{"$gt": ""} __proto__ null',
  "../../../etc/passwd %00%0d%0a <script>alert(1)</script>",
  "\u202e\u0645\u0631\u062d\u0628\u0627 \ud835\udd42\ud835\udd56\ud835\udd6a \u{1F600} a\u0085b\u2028c",
  "x".repeat(5000),
];

describe("security: admin API", () => {
  let s: Scenario;
  let routes: Route[];
  let keys: Record<Role, string> & { revoked: string };
  let bootstrapKeyId: string;
  /** Pending approvals (alice on grant-held, which needs a human): one for ADM-03/04, the rest for ADM-08. */
  let held: string[];
  let ecKey: { publicJwk: JWK; d: string };

  beforeAll(async () => {
    s = await startScenario();
    const created = async (role: string) => (await s.broker.admin("post", "/v1/admin-keys", { name: `k-${role}`, role })).body as { id: string; key: string };
    bootstrapKeyId = ((await s.broker.admin("get", "/v1/admin-keys")).body.adminKeys as { id: string }[])[0]!.id;
    const revoked = await created("admin");
    expect((await s.broker.admin("delete", `/v1/admin-keys/${revoked.id}`)).status).toBe(204);
    keys = { admin: s.broker.adminKey, security: (await created("security")).key, auditor: (await created("auditor")).key, revoked: revoked.key };
    const declared = Object.keys(declaredAdminRoutes((await s.broker.http().get("/openapi.json")).body));
    routes = routesOf(s).filter((r) => r.url.startsWith("/v1/") || declared.includes(label(r)));
    await createGrant(s.broker, { name: "grant-held", agents: [s.alice.id], upstream: "api", methods: ["GET"], paths: ["/**"], requiresApproval: true });
    held = [];
    for (let i = 0; i <= INJECTIONS.length; i++) {
      const res = await issueToken(s.broker, s.alice, { grant: "grant-held" });
      expect(res.status, res.text).toBe(202);
      held.push(res.body.approvalId as string);
    }
    const pair = await generateKeyPair("ES256", { extractable: true });
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" };
    ecKey = { publicJwk, d: (await exportJWK(pair.privateKey)).d! };
  });

  afterAll(async () => {
    await s?.close();
  });

  /** Everything an attack could have changed (audit events aside, which record the attempts). */
  /** Waits for this broker's own events, and the records of the tokens it issued, to reach the database. */
  const settled = async () => expect((await s.broker.admin("get", "/v1/audit?limit=1")).status).toBe(200);
  const state = async () => {
    await settled();
    const p = s.broker.keyward.db.prisma;
    return JSON.stringify(
      await Promise.all([
        p.upstream.findMany({ orderBy: { id: "asc" } }),
        p.agent.findMany({ orderBy: { id: "asc" } }),
        p.grant.findMany({ orderBy: { id: "asc" }, include: { agents: true } }),
        p.adminKey.findMany({ orderBy: { id: "asc" } }),
        p.revocation.findMany({ orderBy: { id: "asc" } }),
        p.issuedToken.findMany({ orderBy: { jti: "asc" } }),
        p.signingKey.findMany({ orderBy: { kid: "asc" } }),
        p.environment.findMany({ orderBy: { name: "asc" } }),
        p.approval.findMany({ orderBy: { id: "asc" } }),
        p.budgetCounter.findMany(),
      ]),
    );
  };

  const concrete = (url: string) => url.replace(":name", "api").replace(":id", "00000000-0000-0000-0000-000000000000").replace("*", "x");

  /**
   * Calls a route the way an attacker would, but harmlessly: writes carry a body that is not valid JSON,
   * so a request that got past authentication would stop at parsing (400) instead of changing anything.
   */
  const attempt = async (route: Route, headers: Record<string, string>, query = "") => {
    let req = s.broker.http()[route.method.toLowerCase() as "get"](concrete(route.url) + query);
    for (const [k, v] of Object.entries(headers)) req = req.set(k, v);
    if (route.method !== "GET") req = req.set("content-type", "application/json").send("{");
    return s.record(await req);
  };

  /**
   * A valid request for each admin write route, on real objects: had a role check been missing, it
   * would change something (ADM-03 then sees the state differ), not stop at validation.
   */
  const validRequest = (route: string): { path: string; body?: object; form?: string } | undefined => {
    const sim = { method: "GET", url: "/proxy/api/v1/items" };
    const requests: Record<string, { path: string; body?: object; form?: string }> = {
      "POST /oauth2/introspect": { path: "/oauth2/introspect", form: `token=${s.tokens.api}` },
      "POST /v1/signing-keys/rotate": { path: "/v1/signing-keys/rotate" },
      "POST /v1/agents/:id/rotate-secret": { path: `/v1/agents/${s.alice.id}/rotate-secret`, body: { overlapSeconds: 0 } },
      "PUT /v1/agents/:id/jwks": { path: `/v1/agents/${s.alice.id}/jwks`, body: { keys: [ecKey.publicJwk] } },
      "POST /v1/upstreams": {
        path: "/v1/upstreams",
        body: { name: "role-up", baseUrl: "http://127.0.0.1:9", environment: "staging", auth: { type: "header" }, secret: "role-secret" },
      },
      "PATCH /v1/upstreams/:name": { path: "/v1/upstreams/api", body: { baseUrl: "http://127.0.0.1:9" } },
      "DELETE /v1/upstreams/:name": { path: "/v1/upstreams/keyed" },
      "PUT /v1/upstreams/:name/secret": { path: "/v1/upstreams/api/secret", body: { secret: "role-secret" } },
      "POST /v1/agents": { path: "/v1/agents", body: { name: "role-agent" } },
      "DELETE /v1/agents/:id": { path: `/v1/agents/${s.mallory.id}` },
      "POST /v1/grants": { path: "/v1/grants", body: { name: "role-grant", agents: [s.mallory.id], upstream: "api", methods: ["GET"], paths: ["/**"] } },
      "PATCH /v1/grants/:id": { path: `/v1/grants/${s.grantA.id}`, body: { agents: [s.alice.id, s.mallory.id], methods: ["DELETE"] } },
      "DELETE /v1/grants/:id": { path: `/v1/grants/${s.grantB.id}` },
      "POST /v1/admin-keys": { path: "/v1/admin-keys", body: { name: "role-escalation", role: "admin" } },
      "DELETE /v1/admin-keys/:id": { path: `/v1/admin-keys/${bootstrapKeyId}` },
      "POST /v1/revocations": { path: "/v1/revocations", body: { all: true } },
      "POST /v1/kill-switch": { path: "/v1/kill-switch", body: { reason: "role" } },
      "DELETE /v1/kill-switch": { path: "/v1/kill-switch", body: { reason: "role" } },
      "PUT /v1/environments/:name": { path: "/v1/environments/staging", body: { requiresApproval: true } },
      "POST /v1/approvals/:id/approve": { path: `/v1/approvals/${held[0]}/approve`, body: { note: "role" } },
      "POST /v1/approvals/:id/deny": { path: `/v1/approvals/${held[0]}/deny`, body: { note: "role" } },
      "POST /v1/policy/simulate": { path: "/v1/policy/simulate", body: { grant: "grant-a", request: sim } },
      "GET /v1/upstreams/:name": { path: "/v1/upstreams/api" },
      "GET /v1/agents/:id": { path: `/v1/agents/${s.alice.id}` },
      "GET /v1/grants/:id": { path: `/v1/grants/${s.grantA.id}` },
      "GET /v1/audit/stream": { path: "/v1/audit/stream?afterId=0" },
    };
    const [method, url] = route.split(" ") as [string, string];
    return requests[route] ?? (method === "GET" && !url.includes(":") ? { path: url } : undefined);
  };

  it("finds every admin route, each listed with the permission it declares", async () => {
    // What the app declares (its OpenAPI document is generated from every registered route's config)...
    const declared = declaredAdminRoutes((await s.broker.http().get("/openapi.json")).body);
    expect(Object.fromEntries(Object.entries(declared).map(([r, d]) => [r, d.permission]))).toEqual(ADMIN_ROUTES);
    for (const [route, { permission, roles }] of Object.entries(declared)) expect(roles, route).toEqual(ROLES_WITH[permission as Permission]);
    // ...and what it does: every route in the route tree that refuses a caller without credentials and
    // lets the admin key through is listed, whatever it declares.
    const all = routesOf(s);
    for (const route of all) {
      const [anonymous, admin] = await Promise.all([attempt(route, {}), attempt(route, { authorization: `Bearer ${s.broker.adminKey}` })]);
      if (anonymous.status === 401 && admin.status !== 401) expect(Object.keys(ADMIN_ROUTES), label(route)).toContain(label(route));
    }
    for (const route of Object.keys(ADMIN_ROUTES)) expect(all.map(label)).toContain(route);
    // ADM-03 has a request for every one of them.
    for (const route of Object.keys(ADMIN_ROUTES)) {
      const target = new RegExp(`^${route.split(" ")[1]!.replace(/:\w+/g, "[^/?]+")}(\\?|$)`);
      expect(validRequest(route)?.path, route).toMatch(target);
    }
  });

  it(title("ADM-01"), async () => {
    const before = await state();
    for (const route of routes) {
      const res = await attempt(route, {});
      expect(res.status, label(route)).toBe(statusOf("ADM-01"));
      // On /oauth2/introspect, `unauthenticated` is spelt the OAuth way.
      expect(errorCode(res), label(route)).toMatch(/^(unauthenticated|invalid_client|invalid_token)$/);
    }
    expect(await state()).toBe(before);
  });

  it(title("ADM-02"), async () => {
    const before = await state();
    const admin = s.broker.adminKey;
    const variants: [string, Record<string, string>, string][] = [
      ["agent token", { authorization: `Bearer ${s.tokens.api}` }, ""],
      ["garbage key", { authorization: `Bearer kwa_${"x".repeat(43)}` }, ""],
      ["revoked admin key", { authorization: `Bearer ${keys.revoked}` }, ""],
      ["admin key as Basic user", { authorization: basic(admin, "") }, ""],
      ["admin key as Basic password", { authorization: basic("admin", admin) }, ""],
      ["admin key, another scheme", { authorization: `Token ${admin}` }, ""],
      ["admin key with a suffix", { authorization: `Bearer ${admin}x` }, ""],
      ["admin key in the query", {}, `?access_token=${admin}&key=${admin}`],
      ["admin key in a cookie", { cookie: `access_token=${admin}; key=${admin}` }, ""],
      ["admin key in another header", { "x-api-key": admin, "x-admin-key": admin }, ""],
    ];
    for (const route of routes) {
      const responses = await Promise.all(variants.map(([, headers, query]) => attempt(route, headers, query)));
      for (const [i, [name]] of variants.entries()) {
        expect(responses[i]!.status, `${label(route)} with ${name}`).toBe(statusOf("ADM-02"));
      }
    }
    expect(await state()).toBe(before);
  });

  it(title("ADM-03"), async () => {
    const before = await state();
    for (const [route, permission] of Object.entries(ADMIN_ROUTES)) {
      const [method, url] = route.split(" ") as [Method, string];
      const { path, body, form } = validRequest(route)!;
      for (const role of ROLES.filter((r) => !ROLES_WITH[permission].includes(r))) {
        let req = s.broker.http()[method.toLowerCase() as "post"](path).set("authorization", `Bearer ${keys[role]}`);
        if (form !== undefined) req = req.type("form").send(form);
        else if (body !== undefined) req = req.send(body);
        const res = s.record(await req);
        expect(res.status, `${route} as ${role}`).toBe(statusOf("ADM-03"));
        expect(errorCode(res), `${route} as ${role}`).toMatch(/^(forbidden|insufficient_scope)$/);
      }
      // The roles that hold the permission get past the check (harmlessly: the body does not parse).
      for (const role of ROLES_WITH[permission]) {
        const status = (await attempt({ method, url }, { authorization: `Bearer ${keys[role]}` })).status;
        expect([401, 403], `${route} as ${role}: ${status}`).not.toContain(status);
      }
    }
    expect(await state()).toBe(before);
  });

  it(title("ADM-34"), async () => {
    for (const route of routes.filter((r) => label(r) in ADMIN_ROUTES)) {
      const holder = ROLES_WITH[ADMIN_ROUTES[label(route)]!][0]!;
      for (const [who, headers] of [["no key", {}], [holder, { authorization: `Bearer ${keys[holder]}` }]] as const) {
        const res = await attempt(route, headers);
        expect(res.headers["cache-control"], `${label(route)} with ${who}: ${res.status}`).toMatch(/\bno-store\b/);
      }
    }
    // And the reads, answered in full.
    for (const [route, permission] of Object.entries(ADMIN_ROUTES)) {
      if (!route.startsWith("GET ") || route === "GET /v1/audit/stream") continue;
      const res = s.record(await s.broker.http().get(validRequest(route)!.path).set("authorization", `Bearer ${keys[ROLES_WITH[permission][0]!]}`));
      expect(res.status, route).toBe(200);
      expect(res.headers["cache-control"], route).toMatch(/\bno-store\b/);
    }
  });

  it(title("ADM-04"), async () => {
    const before = await state();
    const upstream = { name: "mass", baseUrl: "http://127.0.0.1:9", environment: "staging", auth: { type: "header" }, secret: "s" };
    const grant = { name: "mass", agents: [s.alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] };
    const sim = { method: "GET", url: "/proxy/api/v1/items" };
    const attempts: [string, string, object][] = [
      ...["id", "clientId", "clientSecret", "secretHash", "createdAt", "role", "grants"].map(
        (f): [string, string, object] => ["post", "/v1/agents", { name: "mass", [f]: f === "createdAt" ? "2000-01-01T00:00:00Z" : "x" }],
      ),
      ...["id", "secretCiphertext", "secretKeyId", "secretUpdatedAt", "createdAt", "grants"].map(
        (f): [string, string, object] => ["post", "/v1/upstreams", { ...upstream, [f]: "x" }],
      ),
      ...["name", "id", "secretCiphertext", "secretKeyId", "secretUpdatedAt"].map((f): [string, string, object] => ["patch", "/v1/upstreams/api", { [f]: "x" }]),
      ["put", "/v1/upstreams/api/secret", { secret: "x", secretKeyId: "x" }],
      ...["id", "upstreamId", "createdAt", "updatedAt"].map((f): [string, string, object] => ["post", "/v1/grants", { ...grant, [f]: "x" }]),
      ...["id", "upstreamId", "createdAt"].map((f): [string, string, object] => ["patch", `/v1/grants/${s.grantA.id}`, { [f]: "x" }]),
      ["patch", `/v1/grants/${s.grantA.id}`, { methods: ["GET", "DELETE"], agents: [s.mallory.id], id: s.grantB.id }],
      ...["key", "keyHash", "id", "revokedAt", "createdAt"].map((f): [string, string, object] => ["post", "/v1/admin-keys", { name: "mass", role: "auditor", [f]: "x" }]),
      ["post", "/v1/admin-keys", { name: "mass", role: "superadmin" }],
      ["post", "/v1/admin-keys", { name: "mass", role: "ADMIN" }],
      ["post", "/v1/admin-keys", { name: "mass", role: ["admin"] }],
      ["post", "/v1/revocations", { agentId: s.bob.id, actor: "admin-key:someone-else" }],
      ["post", "/v1/revocations", { agentId: s.bob.id, createdAt: "2000-01-01T00:00:00Z" }],
      ["post", "/v1/revocations", { all: true, id: "x" }],
      // Environments, the kill switch, approvals.
      ["put", "/v1/environments/staging", { requiresApproval: true, name: "production" }],
      ["put", "/v1/environments/staging", { requiresApproval: true, upstreams: ["other"] }],
      ["put", "/v1/environments/staging", { requiresApproval: true, createdAt: "2000-01-01T00:00:00Z" }],
      ["post", "/v1/kill-switch", { reason: "mass", actor: "admin-key:someone-else" }],
      ["post", "/v1/kill-switch", { engaged: true, engagedBy: "someone-else" }],
      ["post", "/v1/kill-switch", { reason: "mass", createdAt: "2000-01-01T00:00:00Z" }],
      ["delete", "/v1/kill-switch", { liftedBy: "someone-else" }],
      ["post", `/v1/approvals/${held[0]}/deny`, { note: "mass", status: "approved" }],
      ["post", `/v1/approvals/${held[0]}/deny`, { decidedBy: "someone-else" }],
      ["post", `/v1/approvals/${held[0]}/deny`, { note: "mass", capabilities: { methods: ["DELETE"] } }],
      ["post", `/v1/approvals/${held[0]}/deny`, { requestedBy: "admin-key:someone-else" }],
      // The policy simulator: no subject, capability or token beyond what it defines.
      ["post", "/v1/policy/simulate", { grant: "grant-a", request: sim, agentId: s.mallory.id }],
      ["post", "/v1/policy/simulate", { grant: "grant-a", request: sim, capabilities: { methods: ["DELETE"] } }],
      ["post", "/v1/policy/simulate", { grant: "grant-a", request: { ...sim, token: "x" } }],
      // An agent's credentials: no private key, no secret or client id of the caller's choosing.
      ["put", `/v1/agents/${s.alice.id}/jwks`, { keys: [{ ...ecKey.publicJwk, d: ecKey.d }] }],
      ["put", `/v1/agents/${s.alice.id}/jwks`, { keys: [{ ...ecKey.publicJwk, agentId: s.bob.id }] }],
      ["put", `/v1/agents/${s.alice.id}/jwks`, { keys: [], clientSecret: "chosen-secret" }],
      ["post", `/v1/agents/${s.alice.id}/rotate-secret`, { clientSecret: "chosen-secret" }],
      ["post", `/v1/agents/${s.alice.id}/rotate-secret`, { overlapSeconds: 0, secretHash: "x" }],
      ["post", `/v1/agents/${s.alice.id}/rotate-secret`, { overlapSeconds: 0, clientId: "kwc_chosen" }],
      // Grant rules: no extra field in any rule.
      ["post", "/v1/grants", { ...grant, graphql: { allow: [{ field: "x", upstreamId: "x" }] } }],
      ["post", "/v1/grants", { ...grant, graphql: { deny: [{ field: "x", destructive: true }] } }],
      ["post", "/v1/grants", { ...grant, jsonrpc: { allow: [{ method: "x", id: "x" }] } }],
      ["post", "/v1/grants", { ...grant, jsonrpc: { deny: [{ method: "x", requiresApproval: false }] } }],
      ["post", "/v1/grants", { ...grant, deny: [{ method: "GET", agents: [s.mallory.id] }] }],
      ["post", "/v1/grants", { ...grant, destructive: [{ path: "/**", id: "x" }] }],
      ["post", "/v1/grants", { ...grant, budgets: { perToken: { maxCalls: 1, used: 0 } } }],
      ["patch", `/v1/grants/${s.grantA.id}`, { graphql: { allow: [{ field: "x", grantId: s.grantB.id }] } }],
      ["patch", `/v1/grants/${s.grantA.id}`, { jsonrpc: { allow: [{ method: "x", agents: [s.mallory.id] }] } }],
      ["patch", `/v1/grants/${s.grantA.id}`, { budgets: { perGrant: { maxCalls: 5, resetAt: "2000-01-01T00:00:00Z" } } }],
    ];
    for (const [method, path, body] of attempts) {
      const res = s.record(await s.broker.admin(method as "post", path, body));
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(statusOf("ADM-04"));
      expect(res.body.error.code).toBe("validation_failed");
    }
    // Query strings likewise take only the filters they define.
    for (const path of ["/v1/audit?actor=x", "/v1/audit?details=x", "/v1/audit?id=1", "/v1/audit/export?requestId=x", "/v1/approvals?agentId=x"]) {
      const res = s.record(await s.broker.admin("get", path));
      expect(res.status, path).toBe(statusOf("ADM-04"));
      expect(res.body.error.code, path).toBe("validation_failed");
    }
    for (const field of ["cap", "sub", "agentId", "upstream", "jti", "iss", "exp", "client_id", "kid"]) {
      const res = s.record(
        await s.broker.http().post("/v1/tokens").set("authorization", basic(s.alice.clientId, s.alice.clientSecret)).send({ grant: "grant-a", [field]: "x" }),
      );
      expect(res.status, field).toBe(statusOf("ADM-04"));
      expect(res.body.access_token).toBeUndefined();
    }
    expect(await state()).toBe(before);
  });

  it(title("ADM-05"), async () => {
    const before = await state();
    const bodies = [
      '{"name":"proto","__proto__":{"role":"admin","isAdmin":true}}',
      '{"name":"proto","constructor":{"prototype":{"role":"admin"}}}',
      '{"name":"proto","description":"x","__proto__":null}',
    ];
    for (const body of bodies) {
      const res = s.record(
        await s.broker.http().post("/v1/agents").set("authorization", `Bearer ${s.broker.adminKey}`).set("content-type", "application/json").send(body),
      );
      expect(res.status, body).toBe(statusOf("ADM-05"));
    }
    expect(({} as Record<string, unknown>).role).toBeUndefined();
    expect(await state()).toBe(before);
  });

  it(title("ADM-06"), async () => {
    const before = await state();
    const { alice, grantA, grantB } = s;
    const jti = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).jti as string;
    const upstreamId = (await s.broker.admin("get", "/v1/upstreams/api")).body.id as string;
    const adminKeyId = ((await s.broker.admin("get", "/v1/admin-keys")).body.adminKeys as { id: string }[])[0]!.id;
    const attempts: [string, string, object | undefined][] = [
      ["get", `/v1/agents/${grantA.id}`, undefined],
      ["get", `/v1/agents/${jti(s.tokens.api)}`, undefined],
      ["get", `/v1/agents/${alice.clientId}`, undefined],
      ["get", `/v1/grants/${alice.id}`, undefined],
      ["get", `/v1/grants/${grantA.name}`, undefined],
      ["get", `/v1/grants/${upstreamId}`, undefined],
      ["get", "/v1/upstreams/alice", undefined],
      ["patch", `/v1/grants/${alice.id}`, { name: "renamed" }],
      ["patch", `/v1/grants/${upstreamId}`, { name: "renamed" }],
      ["delete", `/v1/grants/${alice.id}`, undefined],
      ["delete", `/v1/agents/${grantB.id}`, undefined],
      ["delete", `/v1/agents/${adminKeyId}`, undefined],
      ["delete", `/v1/admin-keys/${alice.id}`, undefined],
      ["delete", `/v1/admin-keys/${grantA.id}`, undefined],
      ["delete", "/v1/upstreams/alice", undefined],
      ["put", "/v1/upstreams/alice/secret", { secret: "x" }],
      ["post", "/v1/revocations", { jti: grantA.id }],
      ["post", "/v1/revocations", { jti: alice.id }],
    ];
    for (const [method, path, body] of attempts) {
      const res = s.record(await s.broker.admin(method as "post", path, body));
      expect(res.status, `${method} ${path}`).toBe(statusOf("ADM-06"));
      expect(res.body.error.code).toBe("not_found");
    }
    for (const body of [
      { name: "cross", agents: [grantA.id], upstream: "api", methods: ["GET"], paths: ["/**"] },
      { name: "cross", agents: [alice.id], upstream: "alice", methods: ["GET"], paths: ["/**"] },
    ]) {
      const res = s.record(await s.broker.admin("post", "/v1/grants", body));
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("unknown_reference");
    }
    expect(await state()).toBe(before);
  });

  it(title("ADM-07"), async () => {
    await settled();
    const tokens = await s.broker.keyward.db.prisma.issuedToken.count();
    const ask = (agent: { clientId: string; clientSecret: string }, grant: string) =>
      s.broker.http().post("/v1/tokens").set("authorization", basic(agent.clientId, agent.clientSecret)).send({ grant });
    for (const [agent, grant] of [
      [s.mallory, "grant-a"],
      [s.mallory, s.grantA.id],
      [s.alice, "grant-b"],
      [s.alice, s.grantB.id],
      [s.bob, "grant-a2"],
    ] as const) {
      const res = s.record(await ask(agent, grant));
      expect(res.status, `${grant}`).toBe(statusOf("ADM-07"));
      expect(res.body.access_token).toBeUndefined();
    }
    await settled();
    expect(await s.broker.keyward.db.prisma.issuedToken.count()).toBe(tokens);
  });

  it(title("ADM-08"), { timeout: 120_000 }, async () => {
    type Probe = {
      name: string;
      send: (v: string, i: number) => Promise<import("supertest").Response>;
      read?: (res: import("supertest").Response) => unknown;
      /** The value as sent, when the field's format would refuse every payload as given (say, spaces). */
      shape?: (v: string) => string;
      /** One value at a time, for probes that act on a single shared object. */
      serial?: boolean;
    };
    const admin = (method: string, path: string, body?: object) => s.broker.admin(method as "post", path, body);
    const upstream = (i: number) => ({ name: `inj-u${i}`, baseUrl: "http://127.0.0.1:9", environment: "staging", auth: { type: "header" }, secret: "inj-secret" });
    const grant = (i: number) => ({ name: `inj-g${i}`, agents: [s.alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    let n = 0;
    const enc = encodeURIComponent;
    const noSpace = (v: string) => v.replace(/\s+/g, "");
    const sim = (request: object, subject: object = { grant: "grant-a" }) =>
      admin("post", "/v1/policy/simulate", { ...subject, request: { method: "GET", url: "/proxy/api/v1/items", ...request } });
    // Protocol-aware grants need upstreams of their protocol; credentials are set on an agent of their own.
    await createUpstream(s.broker, { name: "inj-gql", baseUrl: "http://127.0.0.1:9", environment: "staging", secret: "inj-secret", protocol: "graphql" });
    await createUpstream(s.broker, { name: "inj-rpc", baseUrl: "http://127.0.0.1:9", environment: "staging", secret: "inj-secret", protocol: "jsonrpc" });
    const rpcGrant = await createGrant(s.broker, { ...grant(0), name: "inj-rpc-grant", upstream: "inj-rpc", jsonrpc: { deny: [{ method: "x" }] } });
    const holder = (await admin("post", "/v1/agents", { name: "inj-credentials" })).body as { id: string };
    const ruleGrant = (i: number, tag: string, upstream: string, extra: object) => ({ ...grant(i), name: `inj-${tag}${i}`, upstream, ...extra });
    const probes: Probe[] = [
      { name: "agent name", send: (v) => admin("post", "/v1/agents", { name: v }), read: (r) => r.body.name },
      { name: "agent description", send: (v, i) => admin("post", "/v1/agents", { name: `inj-a${i}`, description: v }), read: (r) => r.body.description },
      { name: "upstream name", send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: v }) },
      { name: "upstream baseUrl", send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: `inj-b${i}`, baseUrl: `http://127.0.0.1:9/${v}` }) },
      { name: "upstream environment", send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: `inj-e${i}`, environment: v }) },
      { name: "upstream auth header", send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: `inj-h${i}`, auth: { type: "header", header: v } }) },
      {
        name: "upstream auth template",
        send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: `inj-t${i}`, auth: { type: "header", header: "X-K", template: `${v}{secret}` } }),
        read: (r) => r.body.auth?.template?.replace("{secret}", ""),
      },
      { name: "upstream auth param", send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: `inj-p${i}`, auth: { type: "query", param: v } }) },
      { name: "upstream secret", send: (v, i) => admin("post", "/v1/upstreams", { ...upstream(i), name: `inj-s${i}`, secret: v }) },
      { name: "grant name", send: (v) => admin("post", "/v1/grants", { ...grant(n++), name: v }), read: (r) => r.body.name },
      { name: "grant agent id", send: (v, i) => admin("post", "/v1/grants", { ...grant(i), agents: [v] }) },
      { name: "grant upstream", send: (v, i) => admin("post", "/v1/grants", { ...grant(i), name: `inj-gu${i}`, upstream: v }) },
      { name: "grant method", send: (v, i) => admin("post", "/v1/grants", { ...grant(i), name: `inj-gm${i}`, methods: [v] }) },
      { name: "grant path", send: (v, i) => admin("post", "/v1/grants", { ...grant(i), name: `inj-gp${i}`, paths: [`/${v}`] }), read: (r) => r.body.paths?.[0]?.slice(1) },
      { name: "grant deny path", send: (v, i) => admin("post", "/v1/grants", { ...grant(i), name: `inj-gd${i}`, deny: [{ path: `/${v}` }] }) },
      { name: "grant patch name", send: (v) => admin("patch", `/v1/grants/${s.grantB.id}`, { name: `b-${v}` }), read: (r) => r.body.name?.slice(2) },
      { name: "admin key name", send: (v) => admin("post", "/v1/admin-keys", { name: v, role: "auditor" }), read: (r) => r.body.name },
      { name: "admin key role", send: (v) => admin("post", "/v1/admin-keys", { name: "inj", role: v }) },
      { name: "revocation jti", send: (v) => admin("post", "/v1/revocations", { jti: v }) },
      { name: "revocation agentId", send: (v) => admin("post", "/v1/revocations", { agentId: v }), read: (r) => r.body.value },
      { name: "revocation reason", send: (v) => admin("post", "/v1/revocations", { agentId: "nobody", reason: v }) },
      ...["agentId", "grantId", "jti", "upstream", "environment", "method", "pathPrefix", "kind", "decision", "since", "until", "cursor", "limit"].map(
        (q): Probe => ({ name: `audit ?${q}`, send: (v) => s.broker.admin("get", `/v1/audit?${q}=${encodeURIComponent(v)}`) }),
      ),
      { name: "audit ?pathPrefix=/…", send: (v) => admin("get", `/v1/audit?pathPrefix=${enc(`/${v}`)}`) },
      ...["agentId", "grantId", "jti", "upstream", "environment", "method", "pathPrefix", "kind", "afterId"].map(
        (q): Probe => ({ name: `audit export ?${q}`, send: (v) => admin("get", `/v1/audit/export?${q}=${enc(v)}`) }),
      ),
      { name: "audit stream ?afterId", send: (v) => admin("get", `/v1/audit/stream?afterId=${enc(v)}`) },
      { name: "audit activity ?minutes", send: (v) => admin("get", `/v1/audit/activity?minutes=${enc(v)}`) },
      // Environments, the kill switch, approvals.
      { name: "environment name in path", send: (v) => admin("put", `/v1/environments/${enc(v)}`, { requiresApproval: false }) },
      {
        name: "kill-switch reason",
        serial: true,
        send: async (v) => {
          const engaged = await admin("post", "/v1/kill-switch", { reason: v });
          const lifted = s.record(await admin("delete", "/v1/kill-switch", { reason: v }));
          if (engaged.status === 201) expect(lifted.status, "lifting the kill switch").toBe(200);
          else expect(lifted.status, "lifting the kill switch").toBeLessThan(500);
          expect((await admin("get", "/v1/kill-switch")).body.engaged).toBe(false);
          return engaged;
        },
        read: (r) => r.body.reason,
      },
      {
        // Decided with the security key: the admin key created alice, so it may not approve her requests.
        name: "approval note",
        send: (v, i) =>
          s.broker.http().post(`/v1/approvals/${held[i + 1]}/${i % 2 ? "deny" : "approve"}`).set("authorization", `Bearer ${keys.security}`).send({ note: v }),
        read: (r) => r.body.note,
      },
      { name: "approval id in path", send: (v) => admin("post", `/v1/approvals/${enc(v)}/deny`, { note: "x" }) },
      { name: "approvals ?status", send: (v) => admin("get", `/v1/approvals?status=${enc(v)}`) },
      // The policy simulator.
      { name: "simulate jti", send: (v) => sim({}, { jti: v }) },
      { name: "simulate grant", send: (v) => sim({}, { grant: v }) },
      { name: "simulate method", send: (v) => sim({ method: v }) },
      { name: "simulate url", send: (v) => sim({ url: `/proxy/api/v1/${v}` }) },
      { name: "simulate upstream", send: (v) => sim({ url: `/proxy/${enc(v)}/v1/items` }) },
      { name: "simulate header name", send: (v) => sim({ headers: { [v]: "x" } }) },
      { name: "simulate header value", send: (v) => sim({ headers: { "x-test": v } }) },
      { name: "simulate body", send: (v) => sim({ method: "POST", body: v }) },
      // An agent's credentials.
      {
        name: "agent jwks kid",
        send: (v) => admin("put", `/v1/agents/${holder.id}/jwks`, { keys: [{ ...ecKey.publicJwk, kid: v }] }),
        read: (r) => r.body.jwks?.keys?.[0]?.kid,
      },
      { name: "agent jwks x", send: (v) => admin("put", `/v1/agents/${holder.id}/jwks`, { keys: [{ ...ecKey.publicJwk, x: v }] }) },
      { name: "agent id in jwks path", send: (v) => admin("put", `/v1/agents/${enc(v)}/jwks`, { keys: [] }) },
      { name: "rotate-secret overlapSeconds", send: (v) => admin("post", `/v1/agents/${holder.id}/rotate-secret`, { overlapSeconds: v }) },
      { name: "agent id in rotate-secret path", send: (v) => admin("post", `/v1/agents/${enc(v)}/rotate-secret`, { overlapSeconds: 0 }) },
      // Grant rules.
      {
        name: "grant graphql allow field",
        send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "qa", "inj-gql", { graphql: { allow: [{ field: v }] } })),
        read: (r) => r.body.graphql?.allow?.[0]?.field,
      },
      { name: "grant graphql deny field", send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "qd", "inj-gql", { graphql: { deny: [{ field: v }] } })) },
      { name: "grant graphql operation", send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "qo", "inj-gql", { graphql: { deny: [{ operation: v }] } })) },
      {
        name: "grant jsonrpc allow method",
        shape: noSpace,
        send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "ra", "inj-rpc", { jsonrpc: { allow: [{ method: v }] } })),
        read: (r) => r.body.jsonrpc?.allow?.[0]?.method,
      },
      {
        name: "grant jsonrpc deny method",
        shape: noSpace,
        send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "rd", "inj-rpc", { jsonrpc: { deny: [{ method: v }] } })),
        read: (r) => r.body.jsonrpc?.deny?.[0]?.method,
      },
      {
        name: "grant jsonrpc patch method",
        shape: noSpace,
        serial: true,
        send: (v) => admin("patch", `/v1/grants/${rpcGrant.id}`, { jsonrpc: { deny: [{ method: v }] } }),
        read: (r) => r.body.jsonrpc?.deny?.[0]?.method,
      },
      {
        name: "grant destructive path",
        send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "dp", "api", { destructive: [{ path: `/${v}` }] })),
        read: (r) => r.body.destructive?.[0]?.path?.slice(1),
      },
      { name: "grant environment", send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "en", "api", { environments: ["staging", v] })) },
      { name: "grant allowProtected", send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "ap", "api", { allowProtected: [v] })) },
      { name: "grant budgets", send: (v, i) => admin("post", "/v1/grants", ruleGrant(i, "bu", "api", { budgets: { perToken: { maxCalls: v } } })) },
      { name: "agent id in path", send: (v) => admin("get", `/v1/agents/${encodeURIComponent(v)}`) },
      { name: "grant id in path", send: (v) => admin("delete", `/v1/grants/${encodeURIComponent(v)}`) },
      { name: "upstream name in path", send: (v) => admin("get", `/v1/upstreams/${encodeURIComponent(v)}`) },
      { name: "admin key id in path", send: (v) => admin("delete", `/v1/admin-keys/${encodeURIComponent(v)}`) },
      {
        name: "token grant",
        send: (v) => s.broker.http().post("/v1/tokens").set("authorization", basic(s.alice.clientId, s.alice.clientSecret)).send({ grant: v }),
      },
      { name: "token path", send: (v) => s.broker.http().post("/v1/tokens").set("authorization", basic(s.alice.clientId, s.alice.clientSecret)).send({ grant: "grant-a", paths: [`/v1/${v}`] }) },
    ];
    const failures: string[] = [];
    for (const probe of probes) {
      const values = INJECTIONS.map(probe.shape ?? ((v) => v));
      const responses: import("supertest").Response[] = [];
      // One probe's values at once: independent requests, and the suite stays fast.
      if (probe.serial) for (const [i, value] of values.entries()) responses.push(await probe.send(value, i));
      else responses.push(...(await Promise.all(values.map((value, i) => probe.send(value, i)))));
      for (const [i, value] of values.entries()) {
        const res = s.record(responses[i]!);
        const where = `${probe.name} = ${JSON.stringify(value.slice(0, 40))}`;
        if (res.status >= 500) failures.push(`${where} → ${res.status}`);
        else if (res.status >= 400) {
          if (!res.body?.error?.code) failures.push(`${where} → ${res.status} without an error code`);
        } else if (probe.read && probe.read(res) !== value) {
          failures.push(`${where} → stored as ${JSON.stringify(probe.read(res))}`);
        }
      }
    }
    expect(failures).toEqual([]);
    // Nothing was dropped or run: the data is still all there and the broker still works.
    const agents = (await s.broker.admin("get", "/v1/agents")).body.agents as { name: string }[];
    expect(agents.map((a) => a.name)).toEqual(expect.arrayContaining(["alice", "bob", "mallory", INJECTIONS[0], INJECTIONS[1]]));
    expect((await s.broker.http().get("/proxy/api/v1/items").set("authorization", `Bearer ${s.tokens.api}`)).status).toBe(200);
  });

  it(title("ADM-09"), async () => {
    const before = await state();
    const bad = ["a\u0000b", "a\ud800b", "\udc00", "ok\ud83d"];
    const attempts: [string, string, object][] = [];
    for (const v of bad) {
      attempts.push(
        ["post", "/v1/agents", { name: v }],
        ["post", "/v1/agents", { name: "nul", description: v }],
        ["post", "/v1/grants", { name: v, agents: [], upstream: "api", methods: ["GET"], paths: ["/**"] }],
        ["post", "/v1/grants", { name: "nul", agents: [v], upstream: "api", methods: ["GET"], paths: ["/**"] }],
        ["post", "/v1/grants", { name: "nul", agents: [], upstream: "api", methods: ["GET"], paths: [`/${v}`] }],
        ["post", "/v1/admin-keys", { name: v, role: "auditor" }],
        ["post", "/v1/revocations", { agentId: v }],
        ["post", "/v1/revocations", { jti: v }],
        ["post", "/v1/revocations", { agentId: "x", reason: v }],
        ["patch", `/v1/grants/${s.grantB.id}`, { name: v }],
        ["patch", "/v1/upstreams/api", { auth: { type: "header", header: "X-K", template: `${v}{secret}` } }],
        ["post", "/v1/agents", { name: "nul", [v]: 1 }],
      );
    }
    for (const [method, path, body] of attempts) {
      const res = s.record(await s.broker.admin(method as "post", path, body));
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(statusOf("ADM-09"));
      expect(res.body.error.code).toBe("validation_failed");
    }
    for (const path of ["/v1/agents/%00", "/v1/grants/a%00b", "/v1/audit?agentId=%00", "/v1/audit?kind=a%00", "/v1/upstreams/api?x=%00"]) {
      const res = s.record(await s.broker.admin("get", path));
      expect(res.status, path).toBe(statusOf("ADM-09"));
    }
    const token = s.record(
      await s.broker.http().post("/v1/tokens").set("authorization", basic(s.alice.clientId, s.alice.clientSecret)).send({ grant: "grant-a\u0000" }),
    );
    expect(token.status).toBe(statusOf("ADM-09"));
    expect(await state()).toBe(before);
  });

  it(title("ADM-10"), async () => {
    const credentials = [
      basic("kwc\u0000x", "y"),
      basic(`${s.alice.clientId}\u0000`, s.alice.clientSecret),
      basic(s.alice.clientId, `${s.alice.clientSecret}\u0000`),
      basic("kwc\r\nx", "y"),
      basic("\u{1F600}".repeat(60), "y"),
      basic("a".repeat(99) + "\u{1F600}", "y"),
      "Basic " + Buffer.from([0x6b, 0xed, 0xa0, 0x80, 0x3a, 0x79]).toString("base64"),
      "Basic " + Buffer.from([0xff, 0xfe, 0x3a, 0x00]).toString("base64"),
      basic("k".repeat(10_000), "y"),
    ];
    for (const authorization of credentials) {
      const res = s.record(await s.broker.http().post("/v1/tokens").set("authorization", authorization).send({ grant: "grant-a" }));
      expect(res.status, authorization.slice(0, 60)).toBe(statusOf("ADM-10"));
      expect(res.body.error.code).toBe("invalid_client");
    }
    // The OAuth endpoints form-decode Basic credentials (RFC 6749 §2.3.1): printable ASCII can decode to a NUL.
    for (const [path, form] of [
      ["/oauth2/token", "grant_type=client_credentials&scope=grant:grant-a"],
      ["/oauth2/revoke", "token=abc"],
      ["/oauth2/introspect", "token=abc"],
    ]) {
      const res = s.record(await s.broker.http().post(path!).set("authorization", basic("kwc_%00x", "y")).type("form").send(form!));
      expect(res.status, path).toBe(statusOf("ADM-10"));
      expect(res.body.error, path).toBe("invalid_client");
    }
  });

  it(title("ADM-11"), async () => {
    for (const query of [
      "since=0000-01-01T00:00:00Z",
      "until=0000-01-01T00:00:00Z",
      "since=0000-01-01T00:00:00%2B14:00",
      "cursor=9999999999999999999",
      "cursor=9223372036854775808",
    ]) {
      const res = s.record(await s.broker.admin("get", `/v1/audit?${query}`));
      expect(res.status, query).toBe(statusOf("ADM-11"));
      expect(res.body.error.code).toBe("validation_failed");
    }
    // The extremes that are valid still work.
    for (const query of ["cursor=9223372036854775807", "since=1970-01-01T00:00:00Z", "until=9999-12-31T23:59:59Z"]) {
      expect((await s.broker.admin("get", `/v1/audit?${query}`)).status, query).toBe(200);
    }
  });

  it(title("SEC-01"), async () => {
    await assertNoSecretLeaks(s);
  });
});
