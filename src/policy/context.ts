import type { Upstream } from "@prisma/client";
import { approvalReasons, type Approvals } from "../approvals/approvals.js";
import type { Environments } from "../environments/environments.js";
import type { Grants } from "../grants/grants.js";
import type { GrantPolicy, TargetPolicy, TokenApproval } from "./decide.js";
import type { Protocol } from "./rules.js";

export type PolicyLookups = { grants: Grants; environments: Environments; approvals: Approvals };

/** Each cached upstream row's host and base path, parsed once rather than on every call. */
const parsedBaseUrls = new WeakMap<Upstream, { host: string; basePath: string[] }>();

/** The upstream as decide() sees it. */
export function targetPolicy(upstream: Upstream, environmentRequiresApproval: boolean): TargetPolicy {
  let parsed = parsedBaseUrls.get(upstream);
  if (!parsed) {
    const url = new URL(upstream.baseUrl);
    parsed = { host: url.hostname, basePath: url.pathname.split("/").filter(Boolean).map(decodeURIComponent) };
    parsedBaseUrls.set(upstream, parsed);
  }
  const { host, basePath } = parsed;
  return {
    environment: upstream.environment,
    environmentRequiresApproval,
    protocol: upstream.protocol as Protocol,
    host,
    basePath,
    presets: upstream.presets,
  };
}

/**
 * What decide() needs besides the call itself, as stored now: the grant, the upstream and its
 * environment, and what a human approved for the token in that environment (looked up only when the
 * grant or environment makes approval matter). `jtis`: the token's and its ancestors', since exchanged tokens inherit.
 */
export async function loadDecisionContext(
  lookups: PolicyLookups,
  token: { grantId: string; jtis: readonly string[] },
  upstream: Upstream,
): Promise<{ grant: GrantPolicy | null; target: TargetPolicy; approval: TokenApproval | null }> {
  const grant = await lookups.grants.policyFor(token.grantId);
  const target = targetPolicy(upstream, await lookups.environments.requiresApproval(upstream.environment));
  const environment = { name: target.environment, requiresApproval: target.environmentRequiresApproval };
  const approvalMatters = grant !== null && approvalReasons(grant, environment).length > 0;
  return { grant, target, approval: approvalMatters ? await lookups.approvals.forToken(token.jtis, target.environment) : null };
}
