import { Prisma, type Grant } from "@prisma/client";
import type { z } from "zod";
import { badRequest } from "../http/errors.js";
import type { HttpRule } from "../policy/decide.js";
import { presetRedactionsOf } from "../policy/presets/index.js";
import type { RedactRule } from "../redaction/rules.js";
import { grantFitProblems, type Budgets, type GraphqlRules, type grantPolicyFields, type JsonRpcRules, type UpstreamPolicyFacts } from "../policy/rules.js";

/** The policy fields beyond methods, paths and deny, as the API shows them and decide() reads them. */
export type GrantPolicyView = {
  environments: string[];
  requiresApproval: boolean;
  destructive: HttpRule[];
  requiresApprovalFor: HttpRule[];
  graphql: GraphqlRules | null;
  jsonrpc: JsonRpcRules | null;
  allowProtected: string[];
  budgets: Budgets | null;
};

type PolicyInput = { [K in keyof typeof grantPolicyFields]?: z.infer<(typeof grantPolicyFields)[K]> };

export function grantPolicyView(row: Grant): GrantPolicyView {
  return {
    environments: row.environments,
    requiresApproval: row.requiresApproval,
    destructive: row.destructive as HttpRule[],
    requiresApprovalFor: row.requiresApprovalFor as HttpRule[],
    graphql: row.graphql as GraphqlRules | null,
    jsonrpc: row.jsonrpc as JsonRpcRules | null,
    allowProtected: row.allowProtected,
    budgets: row.budgets as Budgets | null,
  };
}

/**
 * The policy columns to store: the input over the current values (or the defaults on create, where
 * environments default to the upstream's), refused with 400 if they do not fit the upstream.
 */
export function grantPolicyColumns(input: PolicyInput, current: GrantPolicyView | null, upstream: UpstreamPolicyFacts) {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<GrantPolicyView>;
  const merged: GrantPolicyView = {
    environments: [upstream.environment],
    requiresApproval: false,
    destructive: [],
    requiresApprovalFor: [],
    graphql: null,
    jsonrpc: null,
    allowProtected: [],
    budgets: null,
    ...current,
    ...defined,
  };
  const problems = grantFitProblems(merged, upstream);
  if (problems.length > 0) throw badRequest("policy_misfit", "the grant's policy does not fit its upstream", problems);
  const json = (value: object | null) => value ?? Prisma.DbNull;
  return {
    environments: [...new Set(merged.environments)],
    requiresApproval: merged.requiresApproval,
    destructive: merged.destructive,
    requiresApprovalFor: merged.requiresApprovalFor,
    graphql: json(merged.graphql),
    jsonrpc: json(merged.jsonrpc),
    allowProtected: [...new Set(merged.allowProtected)],
    budgets: json(merged.budgets),
  };
}

/** A grant's response redaction: its rules, and the preset redactions it turns off. */
export type GrantRedaction = { redact: RedactRule[]; redactOptOut: string[] };

/**
 * The redaction columns to store: the input over the current values, refused with 400 if they do not fit
 * the upstream (GraphQL field rules need a GraphQL upstream; an opt-out must name a redaction of its presets).
 */
export function grantRedactionColumns(input: Partial<GrantRedaction>, current: GrantRedaction | null, upstream: UpstreamPolicyFacts): GrantRedaction {
  const redact = input.redact ?? current?.redact ?? [];
  const redactOptOut = [...new Set(input.redactOptOut ?? current?.redactOptOut ?? [])];
  const problems: string[] = [];
  if (upstream.protocol !== "graphql" && redact.some((rule) => "graphqlField" in rule)) {
    problems.push(`redact: graphqlField rules need an upstream with protocol "graphql"`);
  }
  const offered = new Set(presetRedactionsOf(upstream.presets).map((r) => r.id));
  for (const id of redactOptOut) {
    if (!offered.has(id)) problems.push(`redactOptOut: ${id} is not a redaction of the upstream's presets`);
  }
  if (problems.length > 0) throw badRequest("policy_misfit", "the grant's redaction does not fit its upstream", problems);
  return { redact, redactOptOut };
}
