import { z } from "zod";
import { slug } from "../http/schemas.js";
import { HTTP_METHODS } from "./decide.js";
import { GRAPHQL_OPERATION_TYPES } from "./graphql.js";
import { isValidPathPattern } from "./paths.js";
import { presetById, PRESET_IDS, presetsForHost, PROTECTED_OPERATION_IDS } from "./presets/index.js";

/**
 * The policy parts of grants and upstreams as the admin API takes them. Everything is validated here,
 * when a grant or upstream is written, never per request.
 */

export const PROTOCOLS = ["http", "graphql", "jsonrpc"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const pathPattern = z
  .string()
  .refine(isValidPathPattern, "a path pattern: /literal, * (one segment), {name} (one segment), ** (any depth)");

/**
 * Query parameters a rule needs, by name (any case), each with a value glob: `"*"` for present with any
 * value, including none (`?delete`).
 */
export const queryRule = z
  .record(z.string().min(1).max(200).regex(/^[^&=#]+$/, "a query parameter name"), z.string().max(1000))
  .refine((q) => Object.keys(q).length > 0 && Object.keys(q).length <= 20, "name 1 to 20 parameters");

/** Method, path and/or query: a deny rule, a rule tagging calls as destructive, or one needing approval. */
export const httpRule = z
  .strictObject({ method: z.enum(HTTP_METHODS).optional(), path: pathPattern.optional(), query: queryRule.optional() })
  .refine((r) => r.method !== undefined || r.path !== undefined || r.query !== undefined, "a rule needs a method, a path, a query, or several");

/** A GraphQL name with `*` wildcards: `volumeDelete`, `*Delete`, `backup*`. */
const graphqlNameGlob = z.string().max(100).regex(/^[_A-Za-z*][_0-9A-Za-z*]*$/, "a GraphQL name, * for any characters");
/** A JSON-RPC method name with `*` wildcards: printable, no spaces. */
const jsonRpcMethodGlob = z.string().max(200).regex(/^[\x21-\x7e]+$/, "printable characters without spaces, * for any characters");

const tags = { destructive: z.boolean().optional(), requiresApproval: z.boolean().optional() };
const graphqlMatch = { operation: z.enum(GRAPHQL_OPERATION_TYPES).optional(), field: graphqlNameGlob.optional() };
const needsOperationOrField = [
  (r: { operation?: string; field?: string }) => r.operation !== undefined || r.field !== undefined,
  "a GraphQL rule needs an operation type, a field, or both",
] as const;

export const graphqlRules = z.strictObject({
  allow: z.array(z.strictObject({ ...graphqlMatch, ...tags }).refine(...needsOperationOrField)).max(200).default([]),
  deny: z.array(z.strictObject(graphqlMatch).refine(...needsOperationOrField)).max(200).default([]),
});
export const jsonRpcRules = z.strictObject({
  allow: z.array(z.strictObject({ method: jsonRpcMethodGlob, ...tags })).max(200).default([]),
  deny: z.array(z.strictObject({ method: jsonRpcMethodGlob })).max(200).default([]),
});

const budgetLimits = z
  .strictObject({
    requestsPerMinute: z.number().int().min(1).max(1_000_000).optional(),
    maxCalls: z.number().int().min(1).max(1_000_000_000).optional(),
    /** 0: no destructive call at all. */
    maxDestructiveCalls: z.number().int().min(0).max(1_000_000_000).optional(),
  })
  .refine((b) => Object.keys(b).length > 0, "set at least one limit");
export const budgets = z.strictObject({ perToken: budgetLimits.optional(), perGrant: budgetLimits.optional() });

export type GraphqlRules = z.infer<typeof graphqlRules>;
export type JsonRpcRules = z.infer<typeof jsonRpcRules>;
export type BudgetLimits = z.infer<typeof budgetLimits>;
export type Budgets = z.infer<typeof budgets>;

/** The policy fields of a grant beyond methods, paths and deny; all optional (null clears on update). */
export const grantPolicyFields = {
  /** Environments the grant covers; defaults to its upstream's. */
  environments: z.array(slug).min(1).max(20).optional(),
  requiresApproval: z.boolean().optional(),
  destructive: z.array(httpRule).max(100).optional(),
  /** HTTP calls that need a token a human approved; every token under the grant then waits for one. */
  requiresApprovalFor: z.array(httpRule).max(100).optional(),
  graphql: graphqlRules.nullable().optional(),
  jsonrpc: jsonRpcRules.nullable().optional(),
  allowProtected: z.array(z.enum(PROTECTED_OPERATION_IDS)).max(100).optional(),
  budgets: budgets.nullable().optional(),
};

export const upstreamPolicyFields = {
  protocol: z.enum(PROTOCOLS).optional(),
  /** Backup protection presets; on create, defaults to those known for the base URL's host. */
  presets: z.array(z.enum(PRESET_IDS)).max(PRESET_IDS.length).optional(),
};

export type UpstreamPolicyFacts = { environment: string; protocol: Protocol; presets: readonly string[] };
export type GrantPolicyFacts = {
  environments: readonly string[];
  graphql: GraphqlRules | null;
  jsonrpc: JsonRpcRules | null;
  allowProtected: readonly string[];
};

/** Why the grant's policy does not fit its upstream; empty when it does. */
export function grantFitProblems(grant: GrantPolicyFacts, upstream: UpstreamPolicyFacts): string[] {
  const problems: string[] = [];
  if (!grant.environments.includes(upstream.environment)) {
    problems.push(`environments must include the upstream's environment ${upstream.environment}`);
  }
  if (grant.graphql && upstream.protocol !== "graphql") problems.push(`graphql rules need an upstream with protocol "graphql"`);
  if (grant.jsonrpc && upstream.protocol !== "jsonrpc") problems.push(`jsonrpc rules need an upstream with protocol "jsonrpc"`);
  const offered = new Set(upstream.presets.flatMap((id) => presetById(id)?.operations.map((o) => o.id) ?? []));
  for (const id of grant.allowProtected) {
    if (!offered.has(id)) problems.push(`allowProtected: ${id} is not an operation of the upstream's presets`);
  }
  return problems;
}

/** The presets an upstream gets: as given, or those known for its host; each must fit the protocol. */
export function upstreamPresets(baseUrl: string, protocol: Protocol, given: readonly string[] | undefined): { presets: string[]; problems: string[] } {
  const presets = given ? [...new Set(given)] : presetsForHost(new URL(baseUrl).hostname).map((p) => p.id);
  const problems = presets
    .map((id) => presetById(id)!)
    .filter((preset) => preset.protocol !== protocol)
    .map((preset) => `preset ${preset.id} (${preset.title}) needs protocol "${preset.protocol}"; set it, or presets: [] to opt out`);
  return { presets, problems };
}
