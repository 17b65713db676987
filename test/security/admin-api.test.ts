import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { basic } from "../helpers/scenario.js";
import { statusOf, title } from "./cases.js";
import { assertNoSecretLeaks, startScenario, type Scenario } from "./harness.js";

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
type Route = { method: Method; url: string };

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

/** The permissions of the routes this suite knows; routes added later are checked for role consistency. */
const KNOWN_PERMISSIONS: Record<string, "manage" | "revoke" | "read_audit"> = {
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
  "GET /v1/audit": "read_audit",
};

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
  let keys: { security: string; auditor: string; revoked: string };

  beforeAll(async () => {
    s = await startScenario();
    routes = routesOf(s).filter((r) => r.url.startsWith("/v1/"));
    const created = async (role: string) => (await s.broker.admin("post", "/v1/admin-keys", { name: `k-${role}`, role })).body as { id: string; key: string };
    const revoked = await created("admin");
    expect((await s.broker.admin("delete", `/v1/admin-keys/${revoked.id}`)).status).toBe(204);
    keys = { security: (await created("security")).key, auditor: (await created("auditor")).key, revoked: revoked.key };
  });

  afterAll(async () => {
    await s?.close();
  });

  /** Everything an attack could have changed (audit events aside, which record the attempts). */
  const state = async () => {
    const p = s.broker.keyward.db.prisma;
    return JSON.stringify(
      await Promise.all([
        p.upstream.findMany({ orderBy: { id: "asc" } }),
        p.agent.findMany({ orderBy: { id: "asc" } }),
        p.grant.findMany({ orderBy: { id: "asc" }, include: { agents: true } }),
        p.adminKey.findMany({ orderBy: { id: "asc" } }),
        p.revocation.findMany({ orderBy: { id: "asc" } }),
        p.issuedToken.findMany({ orderBy: { jti: "asc" } }),
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
  const label = (r: Route) => `${r.method} ${r.url}`;

  it("finds the admin routes in the route tree", () => {
    for (const known of Object.keys(KNOWN_PERMISSIONS)) expect(routes.map(label)).toContain(known);
  });

  it(title("ADM-01"), async () => {
    const before = await state();
    for (const route of routes) {
      const res = await attempt(route, {});
      expect(res.status, label(route)).toBe(statusOf("ADM-01"));
      expect(res.body.error.code, label(route)).toMatch(/^(unauthenticated|invalid_client)$/);
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
    for (const route of routes) {
      const as = async (key: string) => (await attempt(route, { authorization: `Bearer ${key}` })).status;
      const admin = await as(s.broker.adminKey);
      // Agent-facing routes (client credentials) take no admin key at all, so they have no roles.
      if (admin === 401) continue;
      const [auditor, security] = await Promise.all([as(keys.auditor), as(keys.security)]);
      for (const status of [auditor, security]) expect(status, label(route)).not.toBe(401);
      expect(admin, label(route)).not.toBe(403);
      // Roles nest: whatever an auditor may do, security may do too.
      if (auditor !== 403) expect(security, label(route)).not.toBe(403);
      const permission = KNOWN_PERMISSIONS[label(route)];
      if (permission === "manage") expect([auditor, security], label(route)).toEqual([statusOf("ADM-03"), statusOf("ADM-03")]);
      if (permission === "revoke") {
        expect(auditor, label(route)).toBe(statusOf("ADM-03"));
        expect(security, label(route)).not.toBe(403);
      }
      if (permission === "read_audit") expect([auditor, security], label(route)).toEqual([200, 200]);
    }
    expect(await state()).toBe(before);
  });

  it(title("ADM-04"), async () => {
    const before = await state();
    const upstream = { name: "mass", baseUrl: "http://127.0.0.1:9", environment: "staging", auth: { type: "header" }, secret: "s" };
    const grant = { name: "mass", agents: [s.alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] };
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
    ];
    for (const [method, path, body] of attempts) {
      const res = s.record(await s.broker.admin(method as "post", path, body));
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(statusOf("ADM-04"));
      expect(res.body.error.code).toBe("validation_failed");
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
    expect(await s.broker.keyward.db.prisma.issuedToken.count()).toBe(tokens);
  });

  it(title("ADM-08"), { timeout: 120_000 }, async () => {
    type Probe = { name: string; send: (v: string, i: number) => Promise<import("supertest").Response>; read?: (res: import("supertest").Response) => unknown };
    const admin = (method: string, path: string, body?: object) => s.broker.admin(method as "post", path, body);
    const upstream = (i: number) => ({ name: `inj-u${i}`, baseUrl: "http://127.0.0.1:9", environment: "staging", auth: { type: "header" }, secret: "inj-secret" });
    const grant = (i: number) => ({ name: `inj-g${i}`, agents: [s.alice.id], upstream: "api", methods: ["GET"], paths: ["/**"] });
    let n = 0;
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
      ...["agentId", "upstream", "kind", "decision", "since", "until", "cursor", "limit"].map(
        (q): Probe => ({ name: `audit ?${q}`, send: (v) => s.broker.admin("get", `/v1/audit?${q}=${encodeURIComponent(v)}`) }),
      ),
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
      // One probe's values at once: independent requests, and the suite stays fast.
      const responses = await Promise.all(INJECTIONS.map((value, i) => probe.send(value, i)));
      for (const [i, value] of INJECTIONS.entries()) {
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
