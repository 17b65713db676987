import { describe, expect, it } from "vitest";
import { z } from "zod";
import { PRESETS, PROTECTED_OPERATION_IDS, presetsForHost, protectedOperationsOf } from "../../../src/policy/presets/index.js";
import { grantFitProblems, grantPolicyFields, upstreamPresets } from "../../../src/policy/rules.js";

const policy = z.strictObject(grantPolicyFields);

describe("grant policy fields: validated when written", () => {
  const valid = [
    { environments: ["staging", "production"] },
    { requiresApproval: true },
    { destructive: [{ method: "POST", path: "/v1/volumes/*/wipe" }] },
    { graphql: { allow: [{ operation: "query" }, { operation: "mutation", field: "service*", destructive: true }], deny: [{ field: "*Delete" }] } },
    { graphql: { allow: [{ field: "backup*", requiresApproval: true }] } },
    { graphql: null },
    { jsonrpc: { allow: [{ method: "eth_*" }], deny: [{ method: "eth_sendRawTransaction" }] } },
    { allowProtected: ["railway.volumeDelete", "aws-rds.DeleteDBSnapshot"] },
    { budgets: { perToken: { requestsPerMinute: 60, maxCalls: 1000 }, perGrant: { maxDestructiveCalls: 0 } } },
  ];
  it.each(valid)("accepts %j", (input) => {
    expect(policy.safeParse(input).success).toBe(true);
  });

  const invalid = [
    { environments: [] },
    { environments: ["Production"] },
    { destructive: [{}] },
    { destructive: [{ path: "no-slash" }] },
    { graphql: { allow: [{}] } },
    { graphql: { allow: [{ destructive: true }] } },
    { graphql: { allow: [{ field: "volume Delete" }] } },
    { graphql: { allow: [{ field: "volume-delete" }] } },
    { graphql: { allow: [{ operation: "query", extra: 1 }] } },
    { graphql: { deny: [{ operation: "delete" }] } },
    { graphql: { deny: [{ field: "x", destructive: true }] } },
    { graphql: { allowed: [] } },
    { jsonrpc: { allow: [{ method: "" }] } },
    { jsonrpc: { allow: [{ method: "a b" }] } },
    { jsonrpc: { allow: [{}] } },
    { allowProtected: ["railway.unknownOperation"] },
    { allowProtected: ["volumeDelete"] },
    { budgets: { perToken: {} } },
    { budgets: { perToken: { requestsPerMinute: 0 } } },
    { budgets: { perToken: { maxCalls: 1.5 } } },
    { budgets: { perToken: { maxDestructiveCalls: -1 } } },
    { budgets: { perAgent: { maxCalls: 1 } } },
    { requiresApproval: "yes" },
  ];
  it.each(invalid)("refuses %j", (input) => {
    expect(policy.safeParse(input).success).toBe(false);
  });
});

describe("grantFitProblems", () => {
  const upstream = { environment: "staging", protocol: "graphql" as const, presets: ["railway"] };
  const fits = { environments: ["staging"], graphql: { allow: [], deny: [] }, jsonrpc: null, allowProtected: ["railway.volumeDelete"] };
  it("accepts a grant that fits", () => {
    expect(grantFitProblems(fits, upstream)).toEqual([]);
  });
  it.each([
    [{ ...fits, environments: ["production"] }, /environments must include the upstream's environment staging/],
    [{ ...fits, jsonrpc: { allow: [], deny: [] } }, /jsonrpc rules need an upstream with protocol "jsonrpc"/],
    [{ ...fits, allowProtected: ["render.diskDelete"] }, /render.diskDelete is not an operation of the upstream's presets/],
  ])("%j", (grant, problem) => {
    expect(grantFitProblems(grant, upstream).join("\n")).toMatch(problem);
  });
  it("graphql rules need a graphql upstream", () => {
    expect(grantFitProblems(fits, { ...upstream, protocol: "http" })).toContain(`graphql rules need an upstream with protocol "graphql"`);
  });
});

describe("presets", () => {
  it("operation ids are unique and carry their preset's id", () => {
    expect(new Set(PROTECTED_OPERATION_IDS).size).toBe(PROTECTED_OPERATION_IDS.length);
    for (const preset of PRESETS) for (const op of preset.operations) expect(op.id.startsWith(`${preset.id}.`)).toBe(true);
  });

  it("each preset's operations are recognisable in its protocol", () => {
    for (const preset of PRESETS) {
      for (const { match } of preset.operations) {
        expect(preset.protocol === "graphql" ? "graphqlMutation" in match : !("graphqlMutation" in match)).toBe(true);
      }
    }
  });

  it.each([
    ["backboard.railway.com", ["railway"]],
    ["BACKBOARD.RAILWAY.APP", ["railway"]],
    ["api.render.com", ["render"]],
    ["api.machines.dev", ["fly-machines"]],
    ["api.fly.io", ["fly-graphql"]],
    ["rds.eu-west-1.amazonaws.com", ["aws-rds"]],
    ["ec2.us-east-1.amazonaws.com", ["aws-ec2"]],
    ["sts.amazonaws.com", ["aws-sts"]],
    ["sts.eu-central-1.amazonaws.com", ["aws-sts"]],
    ["iam.amazonaws.com", ["aws-iam"]],
    ["api.github.com", ["github"]],
    ["rds.eu-west-1.amazonaws.com.evil.test", []],
    ["evilrds.eu-west-1.amazonaws.com", []],
    ["127.0.0.1", []],
  ])("presets for %s: %j", (host, expected) => {
    expect(presetsForHost(host).map((p) => p.id)).toEqual(expected);
  });

  it("upstreamPresets: detected by host, given ones kept, each must fit the protocol", () => {
    expect(upstreamPresets("https://backboard.railway.com/graphql/v2", "graphql", undefined)).toEqual({ presets: ["railway"], problems: [] });
    expect(upstreamPresets("https://backboard.railway.com/graphql/v2", "graphql", [])).toEqual({ presets: [], problems: [] });
    expect(upstreamPresets("https://backboard.railway.com/graphql/v2", "http", undefined).problems).toEqual([
      `preset railway (Railway GraphQL API) needs protocol "graphql"; set it, or presets: [] to opt out`,
    ]);
    expect(upstreamPresets("http://127.0.0.1:1", "http", ["render", "render"])).toEqual({ presets: ["render"], problems: [] });
  });

  it("protectedOperationsOf ignores unknown names", () => {
    expect(protectedOperationsOf(["nope"])).toEqual([]);
    expect(protectedOperationsOf(["github"]).map((o) => o.id)).toEqual(["github.repoDelete", "github.repoDeleteById"]);
  });
});
