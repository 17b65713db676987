import { describe, expect, it } from "vitest";
import { decide, HTTP_METHODS, type GrantPolicy, type ProxyRequest, type TargetPolicy, type TokenCapabilities } from "../../../src/policy/decide.js";
import { normalisePath } from "../../../src/policy/paths.js";
import { title } from "../../security/cases.js";

/** decide() beyond method and path: environments, approval, operation rules, protection presets, destructive counts. */

const token: TokenCapabilities = { agentId: "a1", grantId: "g1", upstream: "api", methods: ["GET", "POST", "DELETE"], paths: ["/**"] };
const baseGrant: GrantPolicy = {
  id: "g1",
  upstream: "api",
  methods: ["GET", "POST", "DELETE"],
  paths: ["/**"],
  deny: [],
  agentIds: ["a1"],
  environments: ["staging"],
  requiresApproval: false,
  destructive: [],
  requiresApprovalFor: [],
  graphql: null,
  jsonrpc: null,
  allowProtected: [],
  budgets: null,
};
const http: TargetPolicy = { environment: "staging", environmentRequiresApproval: false, protocol: "http", basePath: [], presets: [] };
const graphqlTarget: TargetPolicy = { ...http, protocol: "graphql", presets: ["railway"] };
const approved = { ...token, approval: { protectedOperations: ["railway.volumeDelete"] } };

function request(method: string, rawPath: string, target: TargetPolicy, body?: unknown, headers: Record<string, string> = {}, query = ""): ProxyRequest {
  const path = normalisePath(rawPath);
  if (!path.ok) throw new Error(path.reason);
  const bytes = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  return { upstream: "api", method, path: path.path, target, query, headers: { "content-type": "application/json", ...headers }, body: bytes };
}
const gql = (query: string, extra: object = {}) => request("POST", "/graphql", graphqlTarget, { query, ...extra });
const outcome = (d: ReturnType<typeof decide>) => (d.allow ? `allow ${d.destructive}` : d.code);

const graphqlGrant: GrantPolicy = {
  ...baseGrant,
  graphql: {
    allow: [
      { operation: "query" },
      { operation: "mutation", field: "serviceCreate" },
      { operation: "mutation", field: "serviceRestart", destructive: true },
      { operation: "mutation", field: "volumeDelete" },
      { operation: "mutation", field: "deploymentRollback", requiresApproval: true },
    ],
    deny: [{ field: "*Delete" }, { operation: "subscription" }],
  },
};

describe("decide: environments and approval", () => {
  const cases: [string, TokenCapabilities, GrantPolicy, TargetPolicy, string][] = [
    ["covered environment", token, baseGrant, http, "allow 0"],
    ["upstream moved to production", token, baseGrant, { ...http, environment: "production" }, "environment_not_granted"],
    ["grant covering both", token, { ...baseGrant, environments: ["staging", "production"] }, { ...http, environment: "production" }, "allow 0"],
    ["grant requiring approval, token not approved", token, { ...baseGrant, requiresApproval: true }, http, "approval_required"],
    ["grant requiring approval, token approved", { ...token, approval: { protectedOperations: [] } }, { ...baseGrant, requiresApproval: true }, http, "allow 0"],
    ["environment requiring approval", token, baseGrant, { ...http, environmentRequiresApproval: true }, "approval_required"],
    ["environment requiring approval, token approved", { ...token, approval: { protectedOperations: [] } }, baseGrant, { ...http, environmentRequiresApproval: true }, "allow 0"],
    ["environment checked before method", { ...token, methods: ["GET"] }, baseGrant, { ...http, environment: "prod" }, "environment_not_granted"],
    ["an HTTP rule requiring approval matches, token not approved", token, { ...baseGrant, requiresApprovalFor: [{ method: "GET", path: "/v1/*" }] }, http, "approval_required"],
    ["an HTTP rule requiring approval matches, token approved", { ...token, approval: { protectedOperations: [] } }, { ...baseGrant, requiresApprovalFor: [{ path: "/v1/**" }] }, http, "allow 0"],
    ["an HTTP rule requiring approval for another call", token, { ...baseGrant, requiresApprovalFor: [{ method: "DELETE" }, { path: "/v2/**" }] }, http, "allow 0"],
    ["an HTTP rule requiring approval matches in another case", token, { ...baseGrant, requiresApprovalFor: [{ path: "/V1/X" }] }, http, "approval_required"],
    ["a destructive rule matches in another case", token, { ...baseGrant, destructive: [{ path: "/v1/X" }] }, http, "allow 1"],
    ["deny rules are checked first", token, { ...baseGrant, deny: [{ path: "/v1/x" }], requiresApprovalFor: [{ path: "/v1/x" }] }, http, "deny_rule"],
  ];
  it.each(cases)("%s", (_name, t, grant, target, expected) => {
    expect(outcome(decide(t, grant, request("GET", "/v1/x", target)))).toBe(expected);
  });
});

describe("decide: GraphQL rules", () => {
  const cases: [string, ProxyRequest, string][] = [
    ["a query", gql("{ project { id } services { id } }"), "allow 0"],
    ["an allowed mutation", gql("mutation { serviceCreate(name: \"x\") { id } }"), "allow 0"],
    ["a mutation tagged destructive", gql("mutation { serviceRestart(id: 1) }"), "allow 1"],
    ["two destructive operations", gql("mutation { a: serviceRestart(id: 1) b: serviceRestart(id: 2) }"), "allow 2"],
    ["a mutation no rule allows", gql("mutation { projectTransfer(id: 1) }"), "operation_denied"],
    ["deny wins over allow: volumeDelete", gql("mutation { volumeDelete(volumeId: 1) }"), "deny_rule"],
    ["deny by glob: *Delete", gql("mutation { serviceDelete(id: 1) }"), "deny_rule"],
    ["deny by operation type", gql("subscription { logs }"), "deny_rule"],
    ["via alias", gql("mutation { serviceCreate: volumeDelete(volumeId: 1) }"), "deny_rule"],
    ["via inline fragment", gql("mutation { ... on Mutation { volumeDelete(volumeId: 1) } }"), "deny_rule"],
    ["via named fragment", gql("mutation { ...W } fragment W on Mutation { volumeDelete(volumeId: 1) }"), "deny_rule"],
    ["inside a second operation", gql("query A { project { id } } mutation B { volumeDelete(volumeId: 1) }", { operationName: "A" }), "deny_rule"],
    ["in a batch", request("POST", "/graphql", graphqlTarget, [{ query: "{ a }" }, { query: "mutation { volumeDelete(volumeId: 1) }" }]), "deny_rule"],
    ["a persisted query hash", request("POST", "/graphql", graphqlTarget, { extensions: { persistedQuery: { version: 1, sha256Hash: "ab".repeat(32) } } }), "uninspectable"],
    ["a parse error", gql("mutation {"), "uninspectable"],
    ["several operations, no operationName", gql("query A { a } query B { b }"), "uninspectable"],
    ["a rule requiring approval, unapproved token", gql("mutation { deploymentRollback(id: 1) }"), "approval_required"],
    ["GET ?query= with a body not read", request("GET", "/graphql", graphqlTarget, undefined, {}, "query=%7Bproject%7Bid%7D%7D"), "uninspectable"],
  ];
  it.each(cases)("%s", (_name, req, expected) => {
    expect(outcome(decide(token, graphqlGrant, req))).toBe(expected);
  });

  it("a GET query is read from the URL (the proxy passes an empty body)", () => {
    const req = { ...request("GET", "/graphql", graphqlTarget, undefined, {}, "query=%7Bproject%7Bid%7D%7D"), body: Buffer.alloc(0) };
    expect(decide(token, graphqlGrant, req)).toEqual({
      allow: true,
      rule: "GET /**; graphql.allow[0] query project",
      destructive: 0,
      operations: ["query project"],
    });
  });

  it("names each rule that allowed once, however many operations passed it", () => {
    const batch = gql(`{ ${Array.from({ length: 500 }, (_, i) => `a${i}: a`).join(" ")} }`);
    const decision = decide(token, graphqlGrant, batch);
    expect(decision).toMatchObject({ allow: true, rule: "POST /**; graphql.allow[0] query a" });
    expect(decision.allow && decision.operations).toHaveLength(500);
  });

  it("names the rules that allowed and the rule that denied", () => {
    expect(decide(token, graphqlGrant, gql("{ a } mutation M { serviceRestart(id: 1) }", { operationName: "M" }))).toEqual({
      allow: false,
      code: "uninspectable",
      reason: "an anonymous GraphQL operation among several: calls Keyward cannot fully inspect are denied",
    });
    expect(decide(token, graphqlGrant, gql("query Q { a } mutation M { serviceRestart(id: 1) }", { operationName: "M" }))).toEqual({
      allow: true,
      rule: "POST /**; graphql.allow[0] query a; graphql.allow[2] mutation serviceRestart",
      destructive: 1,
      operations: ["query a", "mutation serviceRestart"],
    });
    expect(decide(token, graphqlGrant, gql("mutation { x: volumeDelete(volumeId: 1) }"))).toEqual({
      allow: false,
      code: "deny_rule",
      reason: "graphql.deny[0] matches mutation volumeDelete",
    });
  });

  it("a grant with no allow rules allows no operation", () => {
    const grant = { ...baseGrant, graphql: { allow: [], deny: [] } };
    expect(outcome(decide(token, grant, gql("{ a }")))).toBe("operation_denied");
  });

  it("HTTP rules still apply first: the path must be allowed", () => {
    const grant = { ...graphqlGrant, paths: ["/v1/**"] };
    expect(outcome(decide({ ...token, paths: ["/v1/**"] }, grant, gql("{ a }")))).toBe("path_not_granted");
  });

  it("rules that do not fit the upstream's protocol deny everything", () => {
    expect(outcome(decide(token, graphqlGrant, request("GET", "/v1/x", http)))).toBe("rules_misfit");
    expect(outcome(decide(token, { ...baseGrant, jsonrpc: { allow: [{ method: "*" }], deny: [] } }, gql("{ a }")))).toBe("rules_misfit");
  });

  it("a body that was not read is never guessed at", () => {
    // Every method allowed: no method override could matter (REQ-62), only the operations are left to read.
    const everyMethod = { methods: [...HTTP_METHODS] };
    expect(outcome(decide({ ...token, ...everyMethod }, { ...graphqlGrant, ...everyMethod }, { ...gql("{ a }"), body: undefined }))).toBe("uninspectable");
  });
});

describe("decide: protection presets", () => {
  // Rules that would allow every mutation: only the preset stands between the agent and volumeDelete.
  const permissive: GrantPolicy = { ...baseGrant, graphql: { allow: [{ operation: "query" }, { operation: "mutation" }], deny: [] } };
  const naming: GrantPolicy = { ...permissive, allowProtected: ["railway.volumeDelete"] };
  const cases: [string, TokenCapabilities, GrantPolicy, ProxyRequest, string][] = [
    ["a protected mutation the grant does not name", token, permissive, gql("mutation { volumeDelete(volumeId: 1) }"), "protected_operation"],
    ["the same with no GraphQL rules at all", token, baseGrant, gql("mutation { volumeDelete(volumeId: 1) }"), "protected_operation"],
    ["queries pass with no GraphQL rules", token, baseGrant, gql("{ volumes { id } }"), "allow 0"],
    ["a protected field under another operation type", token, permissive, gql("{ volumeDelete }"), "protected_operation"],
    ["named by the grant, token not approved", token, naming, gql("mutation { volumeDelete(volumeId: 1) }"), "approval_required"],
    ["named and approved", approved, naming, gql("mutation { volumeDelete(volumeId: 1) }"), "allow 1"],
    ["named and approved, but another protected one", approved, naming, gql("mutation { volumeInstanceBackupDelete(id: 1) }"), "protected_operation"],
    ["approved for another operation only", { ...token, approval: { protectedOperations: ["railway.projectDelete"] } }, naming, gql("mutation { volumeDelete(volumeId: 1) }"), "approval_required"],
    ["named and approved, still needs an allow rule", approved, { ...naming, graphql: { allow: [{ operation: "query" }], deny: [] } }, gql("mutation { volumeDelete(volumeId: 1) }"), "operation_denied"],
    ["named and approved, a deny rule still wins", approved, { ...naming, graphql: { allow: [{ operation: "mutation" }], deny: [{ field: "volume*" }] } }, gql("mutation { volumeDelete(volumeId: 1) }"), "deny_rule"],
    ["a persisted query on a protected upstream", token, baseGrant, request("POST", "/graphql", graphqlTarget, { extensions: { persistedQuery: { sha256Hash: "x" } } }), "uninspectable"],
  ];
  it.each(cases)("%s", (_name, t, grant, req, expected) => {
    expect(outcome(decide(t, grant, req))).toBe(expected);
  });

  const render: TargetPolicy = { ...http, presets: ["render"], basePath: ["v1"] };
  const aws: TargetPolicy = { ...http, presets: ["aws-rds"] };
  const sts: TargetPolicy = { ...http, presets: ["aws-sts"] };
  const iam: TargetPolicy = { ...http, presets: ["aws-iam"] };
  const form = { "content-type": "application/x-www-form-urlencoded" };
  const restCases: [string, ProxyRequest, string][] = [
    ["Render: a disk deletion under the base path /v1", request("DELETE", "/disks/dsk-1", render), "protected_operation"],
    ["Render: the same with a trailing slash", request("DELETE", "/disks/dsk-1/", render), "protected_operation"],
    ["Render: the same spelled with dot segments", request("DELETE", "/x/../disks/./dsk-1", render), "protected_operation"],
    ["Render: the same percent-encoded", request("DELETE", "/%64isks/dsk-1", render), "protected_operation"],
    ["Render: the same in another case", request("DELETE", "/DISKS/dsk-1", render), "protected_operation"],
    ["Render: the same under the base path in another case", request("DELETE", "/disks/dsk-1", { ...render, basePath: ["V1"] }), "protected_operation"],
    ["Render: a snapshot restore", request("POST", "/disks/dsk-1/snapshots/restore", render, ""), "protected_operation"],
    ["Render: reading a disk", request("GET", "/disks/dsk-1", render), "allow 0"],
    ["Render: deleting something unprotected", request("DELETE", "/services/srv-1/env-vars/X", render), "allow 1"],
    ["AWS: DeleteDBSnapshot in a form body", request("POST", "/", aws, "Action=DeleteDBSnapshot&DBSnapshotIdentifier=s", form), "protected_operation"],
    ["AWS: DeleteDBSnapshot in the query string", request("GET", "/", aws, "", {}, "Action=DeleteDBSnapshot"), "protected_operation"],
    ["AWS: the action in another case", request("GET", "/", aws, "", {}, "Action=deletedbsnapshot"), "protected_operation"],
    ["AWS: via X-Amz-Target", request("POST", "/", aws, "{}", { "x-amz-target": "AmazonRDSv19.DeleteDBSnapshot" }), "protected_operation"],
    ["AWS: named twice", request("POST", "/", aws, "Action=DeleteDBSnapshot", form, "Action=DescribeDBInstances"), "uninspectable"],
    ["AWS: a harmless action", request("POST", "/", aws, "Action=DescribeDBInstances", form), "allow 0"],
    ["AWS: STS GetCallerIdentity (who am I, no credential)", request("POST", "/", sts, "Action=GetCallerIdentity", form), "allow 0"],
  ];
  it.each(restCases)("%s", (_name, req, expected) => {
    expect(outcome(decide(token, baseGrant, req))).toBe(expected);
  });

  // RDS turns an instance's automated backups off, and with them point-in-time recovery, when ModifyDBInstance
  // sets BackupRetentionPeriod to 0: protected whenever the API might read the parameter as 0.
  const retention: [string, ProxyRequest, string][] = [
    ["BackupRetentionPeriod=0 in a form body", request("POST", "/", aws, "Action=ModifyDBInstance&DBInstanceIdentifier=db&BackupRetentionPeriod=0", form), "protected_operation"],
    ["BackupRetentionPeriod=0 in the query string", request("GET", "/", aws, "", {}, "Action=ModifyDBInstance&BackupRetentionPeriod=0"), "protected_operation"],
    ["the action in the query, the parameter in the body", request("POST", "/", aws, "BackupRetentionPeriod=0", form, "Action=ModifyDBInstance"), "protected_operation"],
    ["00", request("POST", "/", aws, "Action=ModifyDBInstance&BackupRetentionPeriod=00", form), "protected_operation"],
    ["-0", request("POST", "/", aws, "Action=ModifyDBInstance&BackupRetentionPeriod=-0", form), "protected_operation"],
    ["an empty value", request("POST", "/", aws, "Action=ModifyDBInstance&BackupRetentionPeriod=", form), "protected_operation"],
    ["the name in another case", request("POST", "/", aws, "Action=ModifyDBInstance&backupretentionperiod=0", form), "protected_operation"],
    ["the name percent-encoded", request("POST", "/", aws, "Action=ModifyDBInstance&Backup%52etentionPeriod=0", form), "protected_operation"],
    ["7, then 0", request("POST", "/", aws, "Action=ModifyDBInstance&BackupRetentionPeriod=7&BackupRetentionPeriod=0", form), "protected_operation"],
    ["a JSON protocol call, whose body is not read", request("POST", "/", aws, '{"BackupRetentionPeriod":0}', { "x-amz-target": "AmazonRDSv19.ModifyDBInstance" }), "protected_operation"],
    ["BackupRetentionPeriod=7", request("POST", "/", aws, "Action=ModifyDBInstance&BackupRetentionPeriod=7", form), "allow 0"],
    ["ModifyDBInstance without it", request("POST", "/", aws, "Action=ModifyDBInstance&DBInstanceClass=db.t4g.small", form), "allow 0"],
  ];
  it.each(retention)(`${title("REQ-74")}: %s`, (_name, req, expected) => {
    expect(outcome(decide(token, baseGrant, req))).toBe(expected);
  });

  // A new credential in the answer: the agent could act with it outside Keyward.
  it.each([
    ["STS AssumeRole", request("POST", "/", sts, "Action=AssumeRole&RoleArn=arn:aws:iam::1:role/admin&RoleSessionName=s", form)],
    ["STS GetSessionToken in the query", request("GET", "/", sts, "", {}, "Action=GetSessionToken&Version=2011-06-15")],
    ["STS GetFederationToken in another case", request("POST", "/", sts, "Action=getfederationtoken&Name=x", form)],
    ["IAM CreateAccessKey", request("POST", "/", iam, "Action=CreateAccessKey&UserName=deploy", form)],
  ] as const)(`${title("REQ-58")}: %s`, (_name, req) => {
    expect(outcome(decide(token, baseGrant, req))).toBe("protected_operation");
  });

  it("a protected REST call the grant names and a human approved is allowed, and destructive", () => {
    const grant = { ...baseGrant, allowProtected: ["render.diskDelete"] };
    const t = { ...token, approval: { protectedOperations: ["render.diskDelete"] } };
    expect(decide(t, grant, request("DELETE", "/disks/dsk-1", render))).toEqual({
      allow: true,
      rule: "DELETE /**; allowProtected render.diskDelete",
      destructive: 1,
    });
  });
});

describe("decide: JSON-RPC rules", () => {
  const target: TargetPolicy = { ...http, protocol: "jsonrpc" };
  const grant: GrantPolicy = {
    ...baseGrant,
    jsonrpc: { allow: [{ method: "eth_get*" }, { method: "eth_call" }, { method: "eth_send*", destructive: true }], deny: [{ method: "eth_sendRawTransaction" }] },
  };
  const rpc = (body: unknown) => request("POST", "/rpc", target, body);
  const cases: [string, ProxyRequest, string][] = [
    ["an allowed call", rpc({ jsonrpc: "2.0", method: "eth_getBalance", id: 1 }), "allow 0"],
    ["a destructive call", rpc({ jsonrpc: "2.0", method: "eth_sendTransaction", id: 1 }), "allow 1"],
    ["a denied call", rpc({ jsonrpc: "2.0", method: "eth_sendRawTransaction", id: 1 }), "deny_rule"],
    ["a call no rule allows", rpc({ jsonrpc: "2.0", method: "admin_stop", id: 1 }), "operation_denied"],
    ["an allowed batch", rpc([{ method: "eth_call", id: 1 }, { method: "eth_getCode", id: 2 }]), "allow 0"],
    ["a batch with one denied call", rpc([{ method: "eth_call", id: 1 }, { method: "eth_sendRawTransaction", id: 2 }]), "deny_rule"],
    ["a batch with one call no rule allows", rpc([{ method: "eth_call", id: 1 }, { method: "debug_traceCall", id: 2 }]), "operation_denied"],
    ["GET", request("GET", "/rpc", target, ""), "uninspectable"],
  ];
  it.each(cases)("%s", (_name, req, expected) => {
    expect(outcome(decide(token, grant, req))).toBe(expected);
  });

  it("a JSON-RPC upstream without JSON-RPC rules is decided on method and path alone", () => {
    expect(outcome(decide(token, baseGrant, request("POST", "/rpc", target, "not json")))).toBe("allow 0");
  });
});

describe("decide: destructive calls for budgets", () => {
  const cases: [string, GrantPolicy, string, string, number][] = [
    ["GET", baseGrant, "GET", "/v1/volumes", 0],
    ["DELETE", baseGrant, "DELETE", "/v1/volumes/1", 1],
    ["POST tagged destructive by path", { ...baseGrant, destructive: [{ path: "/v1/volumes/*/wipe" }] }, "POST", "/v1/volumes/1/wipe", 1],
    ["POST tagged by method and path, other path", { ...baseGrant, destructive: [{ method: "POST", path: "/v1/db/**" }] }, "POST", "/v1/volumes", 0],
    ["DELETE also tagged counts once", { ...baseGrant, destructive: [{ method: "DELETE" }] }, "DELETE", "/v1/volumes/1", 1],
  ];
  it.each(cases)("%s → %i", (_name, grant, method, path, expected) => {
    // A POST's JSON body is read for a method override (REQ-62): an empty one carries none.
    const d = decide(token, grant, request(method, path, http, method === "POST" ? "" : undefined));
    expect(d.allow && d.destructive).toBe(expected);
  });
});

describe(title("REQ-77"), () => {
  const approvedToken = { ...token, approval: { protectedOperations: [] } };
  const gqlGrant: GrantPolicy = {
    ...baseGrant,
    graphql: {
      allow: [{ operation: "query" }, { operation: "mutation" }, { operation: "mutation", field: "deploymentRollback", requiresApproval: true, destructive: true }],
      deny: [],
    },
  };
  const rpcTarget: TargetPolicy = { ...http, protocol: "jsonrpc" };
  const rpcGrant: GrantPolicy = {
    ...baseGrant,
    jsonrpc: { allow: [{ method: "eth_*" }, { method: "eth_sendRawTransaction", requiresApproval: true, destructive: true }], deny: [] },
  };
  const rpc = (body: unknown) => request("POST", "/rpc", rpcTarget, body);
  const cases: [string, TokenCapabilities, GrantPolicy, ProxyRequest, string][] = [
    ["a GraphQL mutation a later rule requires approval for, unapproved token", token, gqlGrant, gql("mutation { deploymentRollback(id: 1) }"), "approval_required"],
    ["the same under an alias, in a batch", token, gqlGrant, request("POST", "/graphql", graphqlTarget, [{ query: "{ a }" }, { query: "mutation { x: deploymentRollback(id: 1) }" }]), "approval_required"],
    ["the same, approved token: destructive by the later rule", approvedToken, gqlGrant, gql("mutation { deploymentRollback(id: 1) }"), "allow 1"],
    ["another mutation the earlier rule allows", token, gqlGrant, gql("mutation { serviceCreate(name: \"x\") }"), "allow 0"],
    ["a JSON-RPC method a later rule requires approval for, unapproved token", token, rpcGrant, rpc({ jsonrpc: "2.0", method: "eth_sendRawTransaction", id: 1 }), "approval_required"],
    ["the same, approved token: destructive by the later rule", approvedToken, rpcGrant, rpc({ jsonrpc: "2.0", method: "eth_sendRawTransaction", id: 1 }), "allow 1"],
    ["another method the earlier rule allows", token, rpcGrant, rpc({ jsonrpc: "2.0", method: "eth_call", id: 1 }), "allow 0"],
  ];
  it.each(cases)("%s", (_name, t, grant, req, expected) => {
    expect(outcome(decide(t, grant, req))).toBe(expected);
  });
});

describe(title("REQ-81"), () => {
  const headToken = { ...token, methods: ["GET", "HEAD"] as const };
  const grant: GrantPolicy = { ...baseGrant, methods: ["GET", "HEAD"] };
  const cases: [string, GrantPolicy, string][] = [
    ["requiresApprovalFor a GET, sent as HEAD", { ...grant, requiresApprovalFor: [{ method: "GET", path: "/v1/backups/*/download" }] }, "approval_required"],
    ["deny a GET, sent as HEAD", { ...grant, deny: [{ method: "GET", path: "/v1/backups/*/download" }] }, "deny_rule"],
    ["destructive GET, sent as HEAD", { ...grant, destructive: [{ method: "GET", path: "/v1/backups/*/download" }] }, "allow 1"],
    ["a rule for HEAD leaves GET alone", { ...grant, requiresApprovalFor: [{ method: "HEAD", path: "/v1/backups/*/download" }] }, "approval_required"],
  ];
  it.each(cases)("%s", (_name, g, expected) => {
    expect(outcome(decide(headToken, g, request("HEAD", "/v1/backups/7/download", http)))).toBe(expected);
  });
  it("a rule for HEAD does not take GET away", () => {
    const g = { ...grant, requiresApprovalFor: [{ method: "HEAD" as const, path: "/v1/backups/*/download" }] };
    expect(outcome(decide(headToken, g, request("GET", "/v1/backups/7/download", http)))).toBe("allow 0");
  });
});
