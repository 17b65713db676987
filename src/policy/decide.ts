import { pathMatches, type NormalisedPath } from "./paths.js";

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** A deny rule matches when every field it sets matches; a rule must set at least one. */
export type DenyRule = { method?: HttpMethod; path?: string };

/** The grant as stored now: edits narrow live tokens at once. */
export type GrantPolicy = {
  id: string;
  upstream: string;
  methods: readonly HttpMethod[];
  paths: readonly string[];
  deny: readonly DenyRule[];
  agentIds: readonly string[];
};

/** What the token itself allows: a subset of the grant when it was issued. */
export type TokenCapabilities = {
  agentId: string;
  grantId: string;
  upstream: string;
  methods: readonly HttpMethod[];
  paths: readonly string[];
};

export type ProxyRequest = { upstream: string; method: string; path: NormalisedPath };

export type Decision = { allow: true; rule: string } | { allow: false; code: string; reason: string };

const deny = (code: string, reason: string): Decision => ({ allow: false, code, reason });

function isDenyRuleHit(rule: DenyRule, request: ProxyRequest): boolean {
  if (rule.method === undefined && rule.path === undefined) return true; // malformed rules deny, never allow
  if (rule.method !== undefined && rule.method !== request.method) return false;
  if (rule.path !== undefined && !pathMatches(rule.path, request.path)) return false;
  return true;
}

/**
 * May this token make this call? Pure: everything it needs is in its arguments. A call is allowed only
 * when both the token and the grant as it stands now allow it and no deny rule matches; deny rules win,
 * and anything no rule allows is denied.
 */
export function decide(token: TokenCapabilities, grant: GrantPolicy | null, request: ProxyRequest): Decision {
  if (!grant || grant.id !== token.grantId) return deny("grant_gone", "the token's grant no longer exists");
  if (!grant.agentIds.includes(token.agentId)) return deny("agent_not_in_grant", "the agent is no longer in the grant");
  if (token.upstream !== request.upstream || grant.upstream !== request.upstream) {
    return deny("wrong_upstream", `the token is not valid for upstream ${request.upstream}`);
  }
  const method = request.method as HttpMethod;
  if (!token.methods.includes(method)) return deny("method_not_allowed", `the token does not allow ${request.method}`);
  if (!grant.methods.includes(method)) return deny("method_not_allowed", `the grant does not allow ${request.method}`);

  const denyIndex = grant.deny.findIndex((rule) => isDenyRuleHit(rule, request));
  if (denyIndex !== -1) {
    const rule = grant.deny[denyIndex]!;
    return deny("denied_by_rule", `deny[${denyIndex}] matches (${rule.method ?? "any method"} ${rule.path ?? "any path"})`);
  }

  const tokenPath = token.paths.find((p) => pathMatches(p, request.path));
  if (tokenPath === undefined) return deny("path_not_allowed", `the token does not allow ${request.path.decoded}`);
  const grantPath = grant.paths.find((p) => pathMatches(p, request.path));
  if (grantPath === undefined) return deny("path_not_allowed", `the grant does not allow ${request.path.decoded}`);
  return { allow: true, rule: `${request.method} ${tokenPath}` };
}
