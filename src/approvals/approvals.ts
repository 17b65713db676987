import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { Approval, Prisma, PrismaClient } from "@prisma/client";
import { ADMIN_ACTOR_PREFIX } from "../admin/auth.js";
import { appendAudit } from "../audit/audit.js";
import { storedNames } from "../audit/names.js";
import type { GrantView } from "../grants/grants.js";
import { conflict, forbidden, notFound, refused } from "../http/errors.js";
import type { GraphqlRules, JsonRpcRules } from "../policy/rules.js";
import { describeHttpRule, type HttpRule, type TokenApproval } from "../policy/decide.js";
import { readRevocationState, recordRevocation } from "../revocation/service.js";
import type { Capabilities } from "../tokens/issue.js";

export const APPROVAL_STATUSES = ["pending", "approved", "denied", "issuing", "issued", "expired"] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

type ApprovalFacts = {
  requiresApproval: boolean;
  allowProtected: readonly string[];
  requiresApprovalFor: readonly HttpRule[];
  graphql: GraphqlRules | null;
  jsonrpc: JsonRpcRules | null;
};

/**
 * Why a token under this grant, for an upstream in this environment, needs a human's approval; empty
 * when it does not. Pure. A rule that requires approval makes the whole token wait: which rules an
 * agent will use is not known when it asks for the token.
 */
export function approvalReasons(grant: ApprovalFacts, environment: { name: string; requiresApproval: boolean }): string[] {
  const reasons: string[] = [];
  if (grant.requiresApproval) reasons.push("the grant requires approval");
  if (environment.requiresApproval) reasons.push(`environment ${environment.name} requires approval`);
  if (grant.allowProtected.length > 0) reasons.push(`the grant names protected operations: ${grant.allowProtected.join(", ")}`);
  grant.requiresApprovalFor.forEach((rule, i) =>
    reasons.push(`requiresApprovalFor[${i}] (${describeHttpRule(rule)}) requires approval`),
  );
  for (const [kind, rules] of [["graphql", grant.graphql], ["jsonrpc", grant.jsonrpc]] as const) {
    rules?.allow.forEach((rule, i) => rule.requiresApproval && reasons.push(`${kind}.allow[${i}] requires approval`));
  }
  return reasons;
}

/** The stored statuses of a request not decided or not collected yet: past its time, it has expired. */
const EXPIRABLE: ApprovalStatus[] = ["pending", "approved", "issuing"];

/**
 * How long a claim on an approved request's collection stands. Minting takes milliseconds; a claim older
 * than this is one whose broker died (or hung) before the token was minted, and the agent's next poll
 * takes it over instead of the approval staying "issuing" until it expires.
 */
export const CLAIM_LEASE_MS = 30_000;

/** The status as it stands at `now`: a request nobody decided or collected in time has expired. */
export function statusOf(row: Pick<Approval, "status" | "expiresAt">, now: Date): ApprovalStatus {
  const expirable = EXPIRABLE.includes(row.status as ApprovalStatus);
  return expirable && row.expiresAt <= now ? "expired" : (row.status as ApprovalStatus);
}

/** The rows statusOf reads as `status` at `now`, as a query. */
function whereStatus(status: ApprovalStatus, now: Date): Prisma.ApprovalWhereInput {
  if (status === "expired") return { status: { in: EXPIRABLE }, expiresAt: { lte: now } };
  return EXPIRABLE.includes(status) ? { status, expiresAt: { gt: now } } : { status };
}

export function approvalView(row: Approval, now = new Date()) {
  return {
    approvalId: row.id,
    status: statusOf(row, now),
    agentId: row.agentId,
    grantId: row.grantId,
    upstream: row.upstream,
    environment: row.environment,
    reasons: row.reasons,
    protectedOperations: row.protectedOperations,
    capabilities: row.capabilities as Capabilities,
    requestedBy: row.requestedBy,
    decidedBy: row.decidedBy,
    decidedAt: row.decidedAt,
    note: row.note,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
  };
}
export type ApprovalView = ReturnType<typeof approvalView>;

/** Where a new request is announced (src/approvals/webhook.ts). */
export type ApprovalNotifier = { notify(approval: ApprovalView, names: { agent: string; grant: string }): void };

type Meta = { actor: string; requestId: string };

/** Token requests one agent may have waiting for a human at once (distinct ones: the same again is the same). */
const MAX_PENDING_PER_AGENT = 10;

const pick = (row: Approval, keys: string[]) => Object.fromEntries(keys.map((key) => [key, row[key as keyof Approval]]));

/**
 * Who counts as the requester besides the agent: the admin keys that held its credentials when the request
 * was held, or have since (Agent.credentialHolders, kept by src/agents): they could act as the agent.
 */
async function requesters(db: Pick<PrismaClient, "agent">, row: Pick<Approval, "agentId" | "credentialHolders">): Promise<string[]> {
  const agent = await db.agent.findUnique({ where: { id: row.agentId }, select: { credentialHolders: true } });
  return [...row.credentialHolders, ...(agent?.credentialHolders ?? [])];
}

/**
 * The revocation that voids a request, if any. The request counts as a token issued when the agent made
 * it: a revocation since that would have revoked that token (the agent's, the grant's, the upstream's, the
 * environment's, all) voids it, whenever a human decides it. Counted from the decision, a compromised
 * agent's request still waiting when the security team revoked its tokens was honoured once another human,
 * not knowing, approved it. Read from the database, where every replica records revocations.
 */
async function revokedSinceRequested(db: Pick<PrismaClient, "revocation">, row: Approval): Promise<string | null> {
  const revocations = await readRevocationState(db, new Date());
  const asIssued = { jti: row.id, agentId: row.agentId, grantId: row.grantId, upstream: row.upstream, issuedAt: Math.floor(row.createdAt.getTime() / 1000) };
  return revocations.reasonRevoked(asIssued) ?? revocations.reasonEnvironmentRevoked(row.environment, asIssued);
}

/**
 * Break-glass approvals. A token request that needs a human is held here; a human with the `approve`
 * permission approves or denies it (never the requester); the agent then collects its token, once.
 * Every step is audited. An approval covers the token issued from it and tokens exchanged from that one.
 */
export class Approvals {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly options: { ttlSeconds: number; notifier: ApprovalNotifier | null },
  ) {}

  /**
   * Records a held token request and announces it. The same request again, while it waits, is that request
   * (a client retrying without polling asks no human twice); beyond MAX_PENDING_PER_AGENT distinct ones an
   * agent is refused (the gate audits it), so that no agent can bury other agents' requests or flood the webhook.
   */
  async hold(input: {
    agentId: string;
    grant: GrantView;
    environment: string;
    capabilities: Capabilities;
    reasons: string[];
    requestId: string;
  }): Promise<Approval> {
    const { agentId, grant } = input;
    const agent = await this.prisma.agent.findUnique({ where: { id: agentId }, select: { name: true, credentialHolders: true } });
    const names = { agent: agent?.name ?? agentId, grant: grant.name };
    const asked = {
      grantId: grant.id,
      upstream: grant.upstream,
      environment: input.environment,
      capabilities: JSON.parse(JSON.stringify(input.capabilities)) as Prisma.InputJsonObject,
      reasons: input.reasons,
      protectedOperations: grant.allowProtected,
    };
    const held = await this.prisma.$transaction(async (tx) => {
      // One hold at a time per agent: requests arriving together cannot each find room under the limit.
      await tx.$queryRaw`SELECT 1 AS locked FROM "Agent" WHERE id = ${agentId} FOR UPDATE`;
      const waiting = await tx.approval.findMany({ where: { agentId, status: "pending", expiresAt: { gt: new Date() } } });
      const same = waiting.find((row) => isDeepStrictEqual(pick(row, Object.keys(asked)), asked));
      if (same) return { row: same, isNew: false };
      if (waiting.length >= MAX_PENDING_PER_AGENT) return null;
      const created = await tx.approval.create({
        data: {
          id: randomUUID(),
          agentId,
          ...asked,
          status: "pending",
          requestedBy: `agent:${agentId}`,
          credentialHolders: agent?.credentialHolders ?? [],
          expiresAt: new Date(Date.now() + this.options.ttlSeconds * 1000),
        },
      });
      await this.#audit(tx, created, { actor: created.requestedBy, requestId: input.requestId }, "approval.requested", {
        reasons: created.reasons,
        capabilities: input.capabilities,
        protectedOperations: created.protectedOperations,
      });
      return { row: created, isNew: true };
    });
    if (!held) throw refused("too_many_pending_approvals", `${MAX_PENDING_PER_AGENT} token requests of this agent are waiting for a human already`);
    if (held.isNew) this.options.notifier?.notify(approvalView(held.row), names);
    return held.row;
  }

  /**
   * The newest 500 requests, of one status if asked. The status is selected in the query, before the
   * limit: filtered afterwards, a request still waiting was missing from the pending list as soon as 500
   * newer ones had been decided.
   */
  async list(status: ApprovalStatus | undefined) {
    const now = new Date();
    const rows = await this.prisma.approval.findMany({
      where: status === undefined ? {} : whereStatus(status, now),
      orderBy: { createdAt: "desc" },
      take: 500,
    });
    return rows.map((row) => approvalView(row, now));
  }

  /**
   * A human's decision. The requester (the agent, or an admin key holding its credentials, when the request
   * was held or since) may deny, never approve.
   */
  async decide(id: string, verdict: "approve" | "deny", meta: Meta, note: string | undefined): Promise<ApprovalView> {
    return this.prisma.$transaction(async (tx) => {
      const row = await tx.approval.findUnique({ where: { id } });
      if (!row) throw notFound("approval");
      const now = new Date();
      const status = statusOf(row, now);
      if (status !== "pending") throw conflict(`approval is ${status}`);
      if (verdict === "approve" && (meta.actor === row.requestedBy || (await requesters(tx, row)).includes(meta.actor))) {
        throw forbidden("the requester cannot approve its own request", "self_approval");
      }
      const revoked = verdict === "approve" ? await revokedSinceRequested(tx, row) : null;
      if (revoked) throw forbidden(`the request was made before a revocation: ${revoked}`, "approval_invalid");
      const next = verdict === "approve" ? "approved" : "denied";
      const changed = await tx.approval.updateMany({
        where: { id, status: "pending" },
        data: { status: next, decidedBy: meta.actor, decidedAt: now, note: note ?? null },
      });
      if (changed.count !== 1) throw conflict("approval was decided concurrently");
      const decided = await tx.approval.findUniqueOrThrow({ where: { id } });
      await this.#audit(tx, decided, meta, "approval.decided", { verdict, note: note ?? null });
      return approvalView(decided, now);
    });
  }

  /**
   * The agent's poll. Once approved, the first poll claims the approval and issues its token through
   * `issue`, exactly once; later polls see `issued` and no token. If issuing fails (say the grant
   * changed), the approval stays approved for another attempt until it expires. A claim older than
   * CLAIM_LEASE_MS (its broker died before minting) is taken over; a claimer that finishes after losing
   * its claim that way has its token revoked, so one approval never yields two tokens that work. Only
   * the token's jti is recorded, so this module needs nothing from the one that issues it (which depends
   * on it, via the gate).
   */
  async collect<Token extends { jti: string; expires_in: number }>(agentId: string, id: string, requestId: string, issue: (approval: Approval) => Promise<Token>) {
    const row = await this.prisma.approval.findFirst({ where: { id, agentId } });
    if (!row) throw notFound("approval");
    const now = new Date();
    const lapsed = new Date(now.getTime() - CLAIM_LEASE_MS);
    const status = statusOf(row, now);
    const abandoned = status === "issuing" && (row.claimedAt === null || row.claimedAt < lapsed);
    if (status !== "approved" && !abandoned) return approvalView(row, now);
    const claimedAt = now;
    const claimed = await this.prisma.approval.updateMany({
      where: {
        id,
        expiresAt: { gt: now },
        OR: [{ status: "approved" }, { status: "issuing", OR: [{ claimedAt: null }, { claimedAt: { lt: lapsed } }] }],
      },
      data: { status: "issuing", claimedAt },
    });
    if (claimed.count !== 1) return approvalView(await this.prisma.approval.findUniqueOrThrow({ where: { id } }));
    const ours = { id, status: "issuing", claimedAt };
    let token: Token;
    try {
      token = await issue(row);
    } catch (err) {
      await this.prisma.approval.updateMany({ where: ours, data: { status: "approved", claimedAt: null } });
      throw err;
    }
    const issued = await this.prisma.$transaction(async (tx) => {
      const done = await tx.approval.updateMany({ where: ours, data: { status: "issued", issuedJti: token.jti } });
      if (done.count !== 1) return null;
      const updated = await tx.approval.findUniqueOrThrow({ where: { id } });
      await this.#audit(tx, updated, { actor: updated.requestedBy, requestId }, "approval.collected", { jti: token.jti });
      return updated;
    });
    if (!issued) {
      // The claim lapsed while this token was minted, and another poll took the approval over: this token
      // is not the approval's, and must not work.
      const expiresAt = new Date(Date.now() + token.expires_in * 1000);
      await this.prisma.$transaction((tx) => recordRevocation(tx, { jti: token.jti, expiresAt }, { actor: "keyward", requestId, reason: "its approval's claim lapsed" }));
      throw forbidden("the approval was collected by another request", "approval_invalid");
    }
    return { ...approvalView(issued), token };
  }

  /**
   * For the gate: the approval being collected right now for this agent and grant, for the upstream and
   * environment the human was shown (a grant moved to another upstream since would otherwise turn an
   * approval for staging into a token for production), decided by someone who does not hold the agent's
   * credentials now either: an approver who took them after approving (rotated the secret) would otherwise
   * collect the token it approved; by a key not revoked since; and not voided by a revocation since it was requested.
   */
  async assertClaimed(id: string, agentId: string, grantId: string, target: { upstream: string; environment: string }): Promise<void> {
    const row = await this.prisma.approval.findUnique({ where: { id } });
    if (row?.status !== "issuing" || row.agentId !== agentId || row.grantId !== grantId) {
      throw forbidden("the approval is not being collected for this grant", "approval_invalid");
    }
    if (row.upstream !== target.upstream || row.environment !== target.environment) {
      throw forbidden(
        `the approval was for upstream ${row.upstream} (${row.environment}); the grant is now for ${target.upstream} (${target.environment})`,
        "approval_invalid",
      );
    }
    if (row.decidedBy === null || row.decidedAt === null || (await requesters(this.prisma, row)).includes(row.decidedBy)) {
      throw forbidden("the approval was decided by a holder of the agent's credentials", "self_approval");
    }
    // It stands only while the key that decided it does: revoking a stolen key takes back what it approved
    // and was not collected yet.
    const approverId = row.decidedBy.startsWith(ADMIN_ACTOR_PREFIX) ? row.decidedBy.slice(ADMIN_ACTOR_PREFIX.length) : null;
    const approver = approverId && (await this.prisma.adminKey.findUnique({ where: { id: approverId }, select: { revokedAt: true } }));
    if (!approver || approver.revokedAt) throw forbidden("the admin key that approved it has been revoked", "approval_invalid");
    const revoked = await revokedSinceRequested(this.prisma, row);
    if (revoked) throw forbidden(`the request was made before a revocation: ${revoked}`, "approval_invalid");
  }

  /**
   * What was approved for a token, looked up by its jti or an ancestor's (exchanged tokens inherit), in the
   * environment its upstream is in now: a human approved it for the one it was in then, and an upstream
   * moved since into an environment that requires approval has not had that approval.
   */
  async forToken(jtis: readonly string[], environment: string): Promise<TokenApproval | null> {
    const row = await this.prisma.approval.findFirst({ where: { issuedJti: { in: [...jtis] }, status: "issued", environment } });
    return row ? { protectedOperations: row.protectedOperations } : null;
  }

  async #audit(
    tx: Prisma.TransactionClient,
    row: Approval,
    meta: Meta,
    kind: "approval.requested" | "approval.decided" | "approval.collected",
    details: Prisma.InputJsonObject,
  ) {
    await appendAudit(tx, {
      kind,
      actor: meta.actor,
      requestId: meta.requestId,
      agentId: row.agentId,
      grantId: row.grantId,
      upstream: row.upstream,
      environment: row.environment,
      decision: kind === "approval.decided" ? (row.status === "approved" ? "allow" : "deny") : undefined,
      details: { approvalId: row.id, ...details },
      names: await storedNames(tx, row),
    });
  }
}
