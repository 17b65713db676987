import type { PrismaClient } from "@prisma/client";
import { appendAudit } from "../audit/audit.js";
import type { Environments } from "../environments/environments.js";
import type { GrantView } from "../grants/grants.js";
import { approvalRequired, forbidden, KeywardError, notFound } from "../http/errors.js";
import type { Upstreams } from "../upstreams/upstreams.js";
import type { Capabilities } from "../tokens/issue.js";
import { approvalReasons, type Approvals } from "./approvals.js";

export type Admission = {
  agent: { id: string; name?: string };
  grant: GrantView;
  capabilities: Capabilities;
  requestId: string;
  /** Set when the token is being issued from an approval the agent is collecting. */
  approvalId?: string;
};

/**
 * The checks token issuance makes beyond the grant's own limits: the grant must cover its upstream's
 * environment, and a token that needs a human's approval is held (`approval_required`) until one
 * approves it. Called once, just before a token is minted.
 */
export class IssuanceGate {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly upstreams: Pick<Upstreams, "findByName">,
    private readonly environments: Environments,
    private readonly approvals: Approvals,
  ) {}

  async admit({ agent, grant, capabilities, requestId, approvalId }: Admission): Promise<void> {
    const environment = await this.coveredEnvironment({ agent, grant, requestId });
    if (approvalId !== undefined) {
      // Checked whatever the grant requires now: the token is recorded as approved, and counts as such once
      // a requirement lifted for a while is back. A collection refused (an approval voided since it was
      // decided) is a refused token request, audited as one.
      const target = { upstream: grant.upstream, environment };
      return this.approvals
        .assertClaimed(approvalId, agent.id, grant.id, target)
        .catch((err: unknown) => this.#refused(err, { agent, grant, requestId }, environment));
    }
    const reasons = approvalReasons(grant, { name: environment, requiresApproval: await this.environments.requiresApproval(environment) });
    if (reasons.length === 0) return;
    const held = await this.approvals
      .hold({ agentId: agent.id, grant, environment, capabilities, reasons, requestId })
      .catch((err: unknown) => this.#refused(err, { agent, grant, requestId }, environment));
    throw approvalRequired(held.id, held.expiresAt);
  }

  /**
   * The environment of the grant's upstream, which the grant must cover (refused and audited if not).
   * Token exchange asks it too: a child of a token issued before its grant stopped covering the
   * environment could make no call, and is not minted.
   */
  async coveredEnvironment({ agent, grant, requestId }: Omit<Admission, "capabilities" | "approvalId">): Promise<string> {
    // An upstream cannot be deleted while a grant uses it. Read from memory, as the proxy reads it.
    const upstream = await this.upstreams.findByName(grant.upstream);
    if (!upstream) throw notFound(`upstream ${grant.upstream}`);
    const { environment } = upstream;
    if (!grant.environments.includes(environment)) {
      const err = forbidden(`the grant does not cover environment ${environment}`, "environment_not_granted");
      return this.#refused(err, { agent, grant, requestId }, environment);
    }
    return environment;
  }

  /** Audits a refusal of Keyward's own (a token.refused event with its code), then throws it; anything else is thrown as is. */
  async #refused(err: unknown, { agent, grant, requestId }: Omit<Admission, "capabilities" | "approvalId">, environment: string): Promise<never> {
    if (err instanceof KeywardError) {
      await appendAudit(this.prisma, {
        kind: "token.refused",
        actor: `agent:${agent.id}`,
        requestId,
        agentId: agent.id,
        grantId: grant.id,
        upstream: grant.upstream,
        environment,
        decision: "deny",
        reason: err.code,
        details: { reason: err.extra.reason ?? err.message },
        names: { agent: agent.name, grant: grant.name },
      });
    }
    throw err;
  }
}
