import type { BudgetLimits, Grant, GraphqlRule, HttpRule } from "./api";
import { formatDuration } from "./format";

/** A grant's rules in words, as label/text pairs, in the order the proxy weighs them. */
export function describeGrant(grant: Grant, agentName: (id: string) => string): [string, string][] {
  const lines: [string, string][] = [
    ["Agents", grant.agents.length === 0 ? "none: no agent can use it" : grant.agents.map(agentName).join(", ")],
    ["Upstream", `${grant.upstream}, in ${list(grant.environments)}`],
    ["Allows", `${list(grant.methods)} on ${list(grant.paths)}`],
  ];
  if (grant.deny.length > 0) lines.push(["Never", grant.deny.map(httpRule).join("; ")]);
  lines.push(["Tokens", `live at most ${formatDuration(grant.maxTtlSeconds)}${grant.requiresApproval ? "; each needs a human's approval" : ""}`]);
  if (grant.requiresApprovalFor.length > 0) lines.push(["Needs a human's approval", grant.requiresApprovalFor.map(httpRule).join("; ")]);
  if (grant.destructive.length > 0) lines.push(["Counted as destructive", ["DELETE", ...grant.destructive.map(httpRule)].join("; ")]);
  if (grant.graphql) lines.push(["GraphQL", operationRules(grant.graphql.allow.map(graphqlRule), grant.graphql.deny.map(graphqlRule))]);
  if (grant.jsonrpc) lines.push(["JSON-RPC", operationRules(grant.jsonrpc.allow.map((r) => r.method), grant.jsonrpc.deny.map((r) => r.method))]);
  if (grant.allowProtected.length > 0) lines.push(["Protected operations", `${list(grant.allowProtected)}, once a human approves the token`]);
  if (grant.budgets?.perToken) lines.push(["Budget per token", budget(grant.budgets.perToken)]);
  if (grant.budgets?.perGrant) lines.push(["Budget for the grant", budget(grant.budgets.perGrant)]);
  return lines;
}

const list = (items: readonly string[]) => items.join(", ");

const httpRule = (rule: HttpRule) =>
  rule.method && rule.path ? `${rule.method} on ${rule.path}` : rule.method ? `${rule.method} anywhere` : `anything on ${rule.path}`;

const graphqlRule = (rule: GraphqlRule) => [rule.operation ?? "any operation", rule.field ?? "*"].join(" ");

const operationRules = (allow: string[], deny: string[]) =>
  [allow.length > 0 ? `allows ${list(allow)}` : "allows nothing", deny.length > 0 && `never ${list(deny)}`].filter(Boolean).join("; ");

const budget = (limits: BudgetLimits) =>
  [
    limits.requestsPerMinute !== undefined && `${limits.requestsPerMinute} calls a minute`,
    limits.maxCalls !== undefined && `${limits.maxCalls} calls in all`,
    limits.maxDestructiveCalls !== undefined && `${limits.maxDestructiveCalls} destructive calls`,
  ]
    .filter(Boolean)
    .join(", ");
