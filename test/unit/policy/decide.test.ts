import { describe, expect, it } from "vitest";
import { decide, type Decision, type GrantPolicy, type TargetPolicy, type TokenCapabilities } from "../../../src/policy/decide.js";
import { normalisePath, type NormalisedPath } from "../../../src/policy/paths.js";

function path(raw: string): NormalisedPath {
  const result = normalisePath(raw);
  if (!result.ok) throw new Error(result.reason);
  return result.path;
}

const token: TokenCapabilities = {
  agentId: "agent-1",
  grantId: "grant-1",
  upstream: "hosting",
  methods: ["GET", "POST", "DELETE"],
  paths: ["/v1/projects/**", "/v1/status"],
};

const grant: GrantPolicy = {
  id: "grant-1",
  upstream: "hosting",
  methods: ["GET", "POST", "DELETE", "PUT"],
  paths: ["/v1/**"],
  deny: [],
  agentIds: ["agent-0", "agent-1"],
  environments: ["staging"],
  requiresApproval: false,
  destructive: [],
  requiresApprovalFor: [],
  graphql: null,
  jsonrpc: null,
  allowProtected: [],
  budgets: null,
};

const target: TargetPolicy = { environment: "staging", environmentRequiresApproval: false, protocol: "http", basePath: [], presets: [] };

const call = (method: string, raw: string, upstream = "hosting") => ({
  upstream,
  method,
  path: path(raw),
  target,
  query: "",
  headers: {},
  // Read, as the proxy reads it when a form POST could carry a method override (see bodyNeeded).
  body: new Uint8Array(),
});

function codeOf(decision: Decision): string {
  return decision.allow ? "allow" : decision.code;
}

describe("decide: allowed calls", () => {
  const cases: [string, string, string][] = [
    ["GET", "/v1/projects", "GET /v1/projects/**"],
    ["GET", "/v1/projects/p1", "GET /v1/projects/**"],
    ["POST", "/v1/projects/p1/deploys", "POST /v1/projects/**"],
    ["DELETE", "/v1/projects/p1", "DELETE /v1/projects/**"],
    ["GET", "/v1/status", "GET /v1/status"],
    ["GET", "/v1/status/", "GET /v1/status"],
    ["GET", "/v1/x/../status", "GET /v1/status"],
  ];
  it.each(cases)("%s %s → allow by %s", (method, raw, rule) => {
    expect(decide(token, grant, call(method, raw))).toEqual({ allow: true, rule, destructive: method === "DELETE" ? 1 : 0 });
  });

  it("returns the first token pattern that matched as the rule", () => {
    const t = { ...token, paths: ["/v1/projects/*", "/v1/projects/**"] };
    expect(decide(t, grant, call("GET", "/v1/projects/p1"))).toEqual({ allow: true, rule: "GET /v1/projects/*", destructive: 0 });
    expect(decide(t, grant, call("GET", "/v1/projects/p1/x"))).toEqual({ allow: true, rule: "GET /v1/projects/**", destructive: 0 });
  });
});

describe("decide: the token alone is not enough", () => {
  it("grant deleted → grant_gone", () => {
    const d = decide(token, null, call("GET", "/v1/projects"));
    expect(d).toMatchObject({ allow: false, code: "grant_gone" });
  });

  it("a different grant than the token's → grant_gone", () => {
    const d = decide(token, { ...grant, id: "grant-2" }, call("GET", "/v1/projects"));
    expect(d).toMatchObject({ allow: false, code: "grant_gone" });
  });

  it("agent removed from the grant → agent_not_in_grant", () => {
    const d = decide(token, { ...grant, agentIds: ["agent-0"] }, call("GET", "/v1/projects"));
    expect(d).toMatchObject({ allow: false, code: "agent_not_in_grant" });
  });

  it("grant with no agents → agent_not_in_grant", () => {
    expect(codeOf(decide(token, { ...grant, agentIds: [] }, call("GET", "/v1/projects")))).toBe("agent_not_in_grant");
  });

  it("method allowed by the token but removed from the grant → method_not_granted", () => {
    const d = decide(token, { ...grant, methods: ["GET", "POST"] }, call("DELETE", "/v1/projects/p1"));
    expect(d).toEqual({ allow: false, code: "method_not_granted", reason: "the grant does not allow DELETE" });
  });

  it("path narrowed in the grant → path_not_granted", () => {
    const narrowed = { ...grant, paths: ["/v1/projects/*"] };
    expect(decide(token, narrowed, call("GET", "/v1/projects/p1"))).toEqual({ allow: true, rule: "GET /v1/projects/**", destructive: 0 });
    expect(decide(token, narrowed, call("GET", "/v1/projects/p1/deploys"))).toEqual({
      allow: false,
      code: "path_not_granted",
      reason: "the grant does not allow /v1/projects/p1/deploys",
    });
    expect(codeOf(decide(token, narrowed, call("GET", "/v1/status")))).toBe("path_not_granted");
  });

  it("grant moved to another upstream → wrong_upstream", () => {
    expect(codeOf(decide(token, { ...grant, upstream: "hosting-prod" }, call("GET", "/v1/projects")))).toBe("wrong_upstream");
  });
});

describe("decide: the grant alone is not enough", () => {
  const cases: [string, string, string, string][] = [
    // method the grant allows but the token does not
    ["PUT", "/v1/projects/p1", "hosting", "method_not_granted"],
    // path the grant allows but the token does not
    ["GET", "/v1/users", "hosting", "path_not_granted"],
    ["GET", "/v1", "hosting", "path_not_granted"],
    ["GET", "/v1/status/x", "hosting", "path_not_granted"],
    ["GET", "/v1/projectsX", "hosting", "path_not_granted"],
    ["GET", "/v1/projects/../users", "hosting", "path_not_granted"],
    // request to another upstream than the token's
    ["GET", "/v1/projects", "hosting-prod", "wrong_upstream"],
    // methods outside the known set, or in another case, are never allowed
    ["get", "/v1/projects", "hosting", "method_not_granted"],
    ["TRACE", "/v1/projects", "hosting", "method_not_granted"],
    ["CONNECT", "/v1/projects", "hosting", "method_not_granted"],
    ["", "/v1/projects", "hosting", "method_not_granted"],
  ];
  it.each(cases)("%s %s on %s → %s", (method, raw, upstream, code) => {
    const d = decide(token, grant, call(method, raw, upstream));
    expect(d.allow).toBe(false);
    expect(codeOf(d)).toBe(code);
  });

  it("the method reason names the token when the token lacks it", () => {
    expect(decide(token, grant, call("PUT", "/v1/projects/p1"))).toEqual({
      allow: false,
      code: "method_not_granted",
      reason: "the token does not allow PUT",
    });
  });

  it("the path reason names the token when the token lacks it", () => {
    expect(decide(token, grant, call("GET", "/v1/users"))).toEqual({
      allow: false,
      code: "path_not_granted",
      reason: "the token does not allow /v1/users",
    });
  });

  it("wrong upstream reason names the requested upstream", () => {
    expect(decide(token, grant, call("GET", "/v1/projects", "other"))).toEqual({
      allow: false,
      code: "wrong_upstream",
      reason: "the token is not valid for upstream other",
    });
  });
});

describe("decide: deny rules win", () => {
  // [deny rules, method, path, expected code]
  const cases: [GrantPolicy["deny"], string, string, string][] = [
    // method-only
    [[{ method: "DELETE" }], "DELETE", "/v1/projects/p1", "deny_rule"],
    [[{ method: "DELETE" }], "GET", "/v1/projects/p1", "allow"],
    // path-only
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/secrets", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "POST", "/v1/projects/p1/secrets/k", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/secretsX", "allow"],
    // deny matches the normalised path, whatever the spelling
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/x/../secrets/k", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1//secrets", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/%73ecrets", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/./secrets/", "deny_rule"],
    // both: only that method on that path
    [[{ method: "DELETE", path: "/v1/projects/prod" }], "DELETE", "/v1/projects/prod", "deny_rule"],
    [[{ method: "DELETE", path: "/v1/projects/prod" }], "GET", "/v1/projects/prod", "allow"],
    [[{ method: "DELETE", path: "/v1/projects/prod" }], "DELETE", "/v1/projects/staging", "allow"],
    // the deny rule wins even where a token path names the resource literally
    [[{ path: "/v1/status" }], "GET", "/v1/status", "deny_rule"],
    // any one of several rules suffices
    [[{ method: "POST" }, { path: "/v1/projects/p2/**" }], "GET", "/v1/projects/p2/x", "deny_rule"],
    [[{ method: "POST" }, { path: "/v1/projects/p2/**" }], "POST", "/v1/projects/p1", "deny_rule"],
    [[{ method: "POST" }, { path: "/v1/projects/p2/**" }], "GET", "/v1/projects/p1", "allow"],
    // a malformed rule that sets nothing denies everything, never allows
    [[{}], "GET", "/v1/projects", "deny_rule"],    // rules that take away ignore case and encodings an upstream may ignore
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/SECRETS/k", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/V1/Projects/p1/other", "path_not_granted"], // granting paths stay exact
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/%53ecrets", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/%2553ecrets", "deny_rule"], // decoded twice upstream
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/%252553ecrets", "deny_rule"], // decoded three times upstream
    [[{ path: "/v1/projects/*/admin/**" }], "GET", "/v1/projects/p1/adm%252569n", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/%EF%BD%93ecrets", "deny_rule"], // ｓ U+FF53 (NFKC)
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/%C5%BFecrets", "deny_rule"], // ſ long s
    [[{ path: "/v1/projects/*/admin/**" }], "GET", "/v1/projects/p1/adm%C4%B1n", "deny_rule"], // ı dotless i
    [[{ path: "/v1/projects/*/admin/**" }], "GET", "/v1/projects/p1/ADM%C4%B0N", "deny_rule"], // İ dotted I
    [[{ path: "/v1/projects/*/Admin/**" }], "GET", "/v1/projects/p1/admin", "deny_rule"], // the rule's own case does not matter
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/secrets;x/k", "deny_rule"], // path parameters cut
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/secrets%3Bx/k", "deny_rule"],
    [[{ path: "/v1/projects/*/secrets/**" }], "GET", "/v1/projects/p1/secret", "allow"],
  ];
  it.each(cases)("deny %j: %s %s → %s", (deny, method, raw, code) => {
    expect(codeOf(decide(token, { ...grant, deny }, call(method, raw)))).toBe(code);
  });

  it("reports which rule matched", () => {
    const deny = [{ method: "POST" as const }, { method: "DELETE" as const, path: "/v1/projects/*" }];
    expect(decide(token, { ...grant, deny }, call("DELETE", "/v1/projects/p1"))).toEqual({
      allow: false,
      code: "deny_rule",
      reason: "deny[1] matches (DELETE /v1/projects/*)",
    });
    expect(decide(token, { ...grant, deny: [{ path: "/v1/**" }] }, call("GET", "/v1/status"))).toEqual({
      allow: false,
      code: "deny_rule",
      reason: "deny[0] matches (any method /v1/**)",
    });
    expect(decide(token, { ...grant, deny: [{ method: "GET" }] }, call("GET", "/v1/status"))).toEqual({
      allow: false,
      code: "deny_rule",
      reason: "deny[0] matches (GET any path)",
    });
  });

  it("a path parameter does not dodge a deny rule, however the upstream reads it", () => {
    const g = { ...grant, deny: [{ path: "/v1/projects/admin/**" }] };
    const request = call("GET", "/v1/projects/admin;x/users");
    // forwarded as the literal segment "admin%3Bx", yet denied: a server that decodes before cutting
    // path parameters (Spring) would read "admin"
    expect(request.path.encoded).toBe("/v1/projects/admin%3Bx/users");
    expect(codeOf(decide(token, g, request))).toBe("deny_rule");
    expect(codeOf(decide(token, grant, request))).toBe("allow");
  });
});

describe("decide: query rules match every reading a lenient upstream may apply (REQ-38)", () => {
  const withQuery = (query: string) => ({ ...call("POST", "/v1/projects/p1"), query });
  const lenient = ["a=1;force=1", "force[]=1", "force[x]=1", "%2566orce=1", "%EF%BD%86orce=1", "FORCE", "?force=1"];
  const strictlyOther = ["forced=1", "q=force", "x[force]=1", "a=1%3Bforce"];

  it.each(lenient)("deny, requiresApprovalFor and destructive all match ?%s", (query) => {
    const rule = { query: { force: "*" } };
    expect(codeOf(decide(token, { ...grant, deny: [rule] }, withQuery(query)))).toBe("deny_rule");
    expect(codeOf(decide(token, { ...grant, requiresApprovalFor: [rule] }, withQuery(query)))).toBe("approval_required");
    expect(decide(token, { ...grant, destructive: [rule] }, withQuery(query))).toMatchObject({ allow: true, destructive: 1 });
  });

  it.each(strictlyOther)("none matches ?%s, which no reading names force", (query) => {
    const rule = { query: { force: "*" } };
    expect(codeOf(decide(token, { ...grant, deny: [rule], requiresApprovalFor: [rule] }, withQuery(query)))).toBe("allow");
    expect(decide(token, { ...grant, destructive: [rule] }, withQuery(query))).toMatchObject({ allow: true, destructive: 0 });
  });

  it.each(["dry.run=false", "dry+run=false", "dry%20run=false", "dry_run=f%2561lse"])("deny dry_run=false matches ?%s", (query) => {
    expect(codeOf(decide(token, { ...grant, deny: [{ query: { dry_run: "false" } }] }, withQuery(query)))).toBe("deny_rule");
  });

  it("values still have to match: ?dry.run=true is allowed under deny dry_run=false", () => {
    expect(codeOf(decide(token, { ...grant, deny: [{ query: { dry_run: "false" } }] }, withQuery("dry.run=true")))).toBe("allow");
  });
});

describe("decide: checks are ordered so the most fundamental failure is reported", () => {
  it("grant_gone before everything else", () => {
    expect(codeOf(decide(token, null, call("TRACE", "/nope", "other")))).toBe("grant_gone");
  });
  it("agent_not_in_grant before upstream, method and path", () => {
    expect(codeOf(decide(token, { ...grant, agentIds: [] }, call("TRACE", "/nope", "other")))).toBe("agent_not_in_grant");
  });
  it("wrong_upstream before method and path", () => {
    expect(codeOf(decide(token, grant, call("TRACE", "/nope", "other")))).toBe("wrong_upstream");
  });
  it("method before deny rules and paths", () => {
    expect(codeOf(decide(token, { ...grant, deny: [{ path: "/**" }] }, call("PUT", "/nope")))).toBe("method_not_granted");
  });
  it("deny rules before path checks", () => {
    expect(codeOf(decide(token, { ...grant, deny: [{ path: "/**" }] }, call("GET", "/nope")))).toBe("deny_rule");
  });
});
