import { z } from "zod";
import type { PrismaClient } from "@prisma/client";
import type { AuditLog } from "../audit/log.js";
import type { Agents } from "../agents/agents.js";
import { spentCallBudget } from "../budgets/budgets.js";
import { databaseUnavailable, forbidden, KeywardError, notFound, tooManyRequests, unavailable } from "../http/errors.js";
import { HTTP_METHODS } from "../policy/decide.js";
import type { GrantView, Grants } from "../grants/grants.js";
import { pathPattern } from "../grants/grants.js";
import { MAX_EXCHANGE_DEPTH, MAX_TOKEN_TTL_SECONDS, type AgentToken } from "./claims.js";
import {
  delegationFrom,
  narrowCapabilities,
  parentLimits,
  signAgentToken,
  type Capabilities,
  type Delegation,
  type TokenRequest,
  type TtlPolicy,
} from "./issue.js";
import type { KeySet } from "../signing-keys/signing-keys.js";
import type { IssuanceGate } from "../approvals/gate.js";

/** What an agent may ask for: a grant and, optionally, less than it allows. */
export const tokenRequestBody = z.strictObject({
  grant: z.string().min(1).max(200),
  ttlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_SECONDS).optional(),
  methods: z.array(z.enum(HTTP_METHODS)).min(1).max(HTTP_METHODS.length).optional(),
  paths: z.array(pathPattern).min(1).max(100).optional(),
});
export type TokenRequestBody = z.infer<typeof tokenRequestBody>;

export type TokenResponse = {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  jti: string;
};

/** Who a token is for; `name` is recorded in its events (absent only for an agent deleted meanwhile). */
type Client = { id: string; clientId: string; name?: string };

/**
 * Issues tokens, for every route that does (`POST /v1/tokens`, `POST /oauth2/token`): directly for a
 * subset of a grant, or by exchanging a token for a narrower one.
 */
export class Tokens {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly grants: Grants,
    private readonly keys: () => KeySet,
    private readonly claims: { issuer: string; audience: string },
    private readonly ttl: TtlPolicy,
    private readonly gate: IssuanceGate,
    /** Where issued tokens and their events are committed (src/audit/log.ts). */
    private readonly auditLog: Pick<AuditLog, "append" | "keep" | "admit">,
    /** The agent's name for the events of an exchange, which knows the agent only by the parent token. */
    private readonly agents: Pick<Agents, "nameOf">,
  ) {}

  /**
   * Issues a token for a subset of one grant, recording it and its audit event together. `approvalId`
   * is set only by src/approvals, issuing the token a human approved.
   */
  async issue(
    agent: Client,
    body: TokenRequestBody,
    requestId: string,
    approvalId?: string,
    /** RFC 8707 `resource`, as the upstream it names: the grant's must be that one. */
    resource?: { upstream: string },
  ): Promise<TokenResponse> {
    const refuse = this.#refusal(agent, requestId, { grant: body.grant });
    const grant = await this.#grantFor(agent, body.grant, refuse);
    if (resource && resource.upstream !== grant.upstream) {
      return refuse(new KeywardError(400, "invalid_target", `grant ${grant.name} is for upstream ${grant.upstream}, not ${resource.upstream}`), grant);
    }
    const narrowed = narrowCapabilities(grant, body, this.ttl);
    if (!narrowed.ok) return refuse(forbidden(narrowed.reason, "widening_refused"), grant);
    // Environment coverage and break-glass approval (src/approvals/gate.ts): refuses, or holds the request
    // for a human by throwing approval_required (POST /v1/tokens answers it as 202 { approvalId }).
    await this.gate.admit({ agent, grant, capabilities: narrowed.capabilities, requestId, approvalId });
    return this.#mint(agent, grant, narrowed.capabilities, requestId);
  }

  /**
   * RFC 8693 token exchange: a token for at most what `parent` allows (methods, paths, and the life it
   * has left) and what its grant allows now. The child records its chain, so revoking any ancestor
   * revokes it. The caller has verified `parent` and checked it is not revoked.
   */
  async exchange(parent: AgentToken, request: TokenRequest, requestId: string, now = new Date()): Promise<TokenResponse> {
    const agent = { id: parent.agentId, clientId: parent.clientId, name: (await this.agents.nameOf(parent.agentId)) ?? undefined };
    const refuse = this.#refusal(agent, requestId, { exchangedFrom: parent.jti });
    if (parent.ancestors.length + 1 > MAX_EXCHANGE_DEPTH) {
      return refuse(forbidden(`a token may be exchanged at most ${MAX_EXCHANGE_DEPTH} times deep`, "widening_refused"));
    }
    const grant = await this.#grantFor(agent, parent.grantId, refuse);
    // A child is for its parent's upstream or none: minted for the grant's upstream after the grant moved,
    // it would be a token for an upstream its parent never was, carrying the approval a human gave the
    // parent for the other one (exchanged tokens inherit it).
    if (grant.upstream !== parent.upstream) {
      return refuse(forbidden(`the parent token is for upstream ${parent.upstream}; its grant is now for ${grant.upstream}`, "widening_refused"), grant);
    }
    await this.gate.coveredEnvironment({ agent, grant, requestId });
    // A child's calls spend its ancestors' budgets too (src/budgets): a child of a spent token could
    // make no call, so it is refused now, with the error the parent's own call gets.
    const spent = await spentCallBudget(this.prisma, grant.budgets, [...parent.ancestors, parent.jti]);
    if (spent) return refuse(tooManyRequests(`${spent.limit} (${spent.capacity}) is spent`, null), grant);
    const limits = parentLimits(parent, grant, now);
    const narrowed = narrowCapabilities(limits, request, this.ttl, "the parent token");
    if (!narrowed.ok) return refuse(forbidden(narrowed.reason, "widening_refused"), grant);
    return this.#mint(agent, grant, narrowed.capabilities, requestId, now, delegationFrom(parent));
  }

  #refusal(agent: Client, requestId: string, details: Record<string, string>) {
    return async (err: KeywardError, grant?: GrantView): Promise<never> => {
      await this.auditLog.keep({
        kind: "token.refused",
        actor: `agent:${agent.id}`,
        requestId,
        agentId: agent.id,
        grantId: grant?.id,
        names: { agent: agent.name, grant: grant?.name },
        decision: "deny",
        // The code, filterable (src/sdk/codes.ts); the specifics in details.
        reason: err.code,
        details: { ...details, reason: err.extra.reason ?? err.message },
      });
      throw err;
    };
  }

  /** The grant as stored now, which must still include the agent. */
  async #grantFor(agent: Client, ref: string, refuse: (err: KeywardError, grant?: GrantView) => Promise<never>): Promise<GrantView> {
    const grant = await this.grants.findByIdOrName(ref);
    if (!grant) return refuse(notFound(`grant ${ref}`));
    if (!grant.agents.includes(agent.id)) return refuse(forbidden("the agent is not in this grant", "not_in_grant"), grant);
    return grant;
  }

  async #mint(
    agent: Client,
    grant: GrantView,
    capabilities: Capabilities,
    requestId: string,
    now = new Date(),
    delegation?: Delegation,
  ): Promise<TokenResponse> {
    // A token is valid once its record is spooled, and recorded in the database behind it: while the
    // database does not take the log's events, none is issued (fail closed), as any other write is refused.
    if (!this.auditLog.admit()) throw databaseUnavailable();
    const signed = await signAgentToken(
      this.keys(),
      { ...this.claims, agentId: agent.id, clientId: agent.clientId, grantId: grant.id, upstream: grant.upstream },
      capabilities,
      now,
      delegation,
    );
    const parentJti = delegation?.chain.at(-1);
    // The record in its event's line, in one group commit with other calls' events; both reach the database
    // in one statement behind it (src/audit/log.ts).
    await this.auditLog.append(
      {
        kind: "token.issued",
        actor: `agent:${agent.id}`,
        requestId,
        agentId: agent.id,
        jti: signed.jti,
        grantId: grant.id,
        upstream: grant.upstream,
        decision: "allow",
        names: { agent: agent.name, grant: grant.name },
        details: { ...capabilities, expiresAt: signed.expiresAt.toISOString(), ...(parentJti && { exchangedFrom: parentJti }) },
      },
      {
        jti: signed.jti,
        agentId: agent.id,
        grantId: grant.id,
        upstream: grant.upstream,
        methods: capabilities.methods,
        paths: capabilities.paths,
        issuedAt: signed.issuedAt,
        expiresAt: signed.expiresAt,
        kid: signed.kid,
        parentJti,
      },
    ).catch(() => {
      throw unavailable("audit_unavailable", "audit log unavailable; no token issued");
    });
    return {
      access_token: signed.token,
      token_type: "Bearer",
      expires_in: capabilities.ttlSeconds,
      scope: signed.scope,
      jti: signed.jti,
    };
  }
}
