import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Prisma, PrismaClient } from "@prisma/client";
import { appendAudit, type EventNames } from "../audit/audit.js";
import type { AuditLog } from "../audit/log.js";
import { storedNames } from "../audit/names.js";
import { conflict, notFound } from "../http/errors.js";
import type { RevocationRecord, TokenSelector } from "./state.js";

export type RevocationTarget =
  /** `expiresAt`: a verified token's own expiry, which its revocation needs no record for. */
  | { jti: string; expiresAt?: Date }
  | { agentId: string }
  | { grantId: string }
  | { upstream: string }
  | { environment: string }
  | { issuedBefore: Date }
  | { all: true };

type Meta = {
  actor: string;
  reason?: string;
  requestId?: string;
  /** The revoked agent's or grant's name, from a caller that deletes it in the same transaction. */
  names?: EventNames;
};

function selectorOf(target: RevocationTarget): { selector: TokenSelector; value: string } {
  if ("jti" in target) return { selector: "jti", value: target.jti };
  if ("agentId" in target) return { selector: "agent", value: target.agentId };
  if ("grantId" in target) return { selector: "grant", value: target.grantId };
  if ("upstream" in target) return { selector: "upstream", value: target.upstream };
  if ("environment" in target) return { selector: "environment", value: target.environment };
  if ("issuedBefore" in target) return { selector: "issued_before", value: target.issuedBefore.toISOString() };
  return { selector: "all", value: "*" };
}

export type RevocationView = {
  id: string;
  selector: TokenSelector;
  value: string;
  revokedAt: Date;
  expiresAt: Date | null;
  reason: string | null;
  actor: string;
};

/** How long a revocation by jti waits for a token issued a moment ago to be recorded, and how often it looks. */
const TOKEN_RECORD_WAIT_MS = 2_000;
const TOKEN_RECORD_POLL_MS = 25;

/**
 * Waits until the token `jti` is recorded, for at most `timeoutMs`; says whether it is. A token is answered
 * once its record is in its broker's spool, and reaches the database a moment later (src/audit/log.ts):
 * revoking a token just issued must not find it unknown. This broker's own log is flushed first; a
 * replica's tokens come within its next statement.
 */
export async function awaitTokenRecord(
  prisma: Pick<PrismaClient, "issuedToken">,
  ownLog: Pick<AuditLog, "flush">,
  jti: string,
  timeoutMs = TOKEN_RECORD_WAIT_MS,
): Promise<boolean> {
  const recorded = async () => (await prisma.issuedToken.findUnique({ where: { jti }, select: { jti: true } })) !== null;
  if (await recorded()) return true;
  const deadline = Date.now() + timeoutMs;
  await ownLog.flush(timeoutMs);
  for (;;) {
    if (await recorded()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(TOKEN_RECORD_POLL_MS);
  }
}

/**
 * Writes a revocation row and its audit event in the caller's transaction. The row's trigger announces
 * it to every replica on commit; the caller applies it to its own replica's state at once. An unknown
 * jti, upstream or environment is refused (404): a typo must not look like a successful revocation (a
 * caller revoking by jti awaits its record first: `awaitTokenRecord`).
 */
export async function recordRevocation(tx: Prisma.TransactionClient, target: RevocationTarget, meta: Meta): Promise<RevocationView> {
  const { selector, value } = selectorOf(target);
  let expiresAt: Date | null = null;
  if ("jti" in target) {
    // A verified token brings its own expiry; otherwise its record gives it.
    expiresAt = target.expiresAt ?? (await tx.issuedToken.findUnique({ where: { jti: value }, select: { expiresAt: true } }))?.expiresAt ?? null;
    if (!expiresAt) throw notFound("token");
  }
  if (selector === "upstream" && !(await tx.upstream.findUnique({ where: { name: value }, select: { id: true } }))) {
    throw notFound(`upstream ${value}`);
  }
  if (selector === "environment" && !(await tx.upstream.findFirst({ where: { environment: value }, select: { id: true } }))) {
    throw notFound(`environment ${value}`);
  }
  const row = await tx.revocation.create({
    data: { id: randomUUID(), selector, value, reason: meta.reason, actor: meta.actor, expiresAt },
  });
  // The name of the agent or grant revoked: the deleter's, or as stored now.
  const names =
    meta.names ?? (selector === "agent" ? await storedNames(tx, { agentId: value }) : selector === "grant" ? await storedNames(tx, { grantId: value }) : undefined);
  await appendAudit(tx, {
    kind: "revocation.created",
    actor: meta.actor,
    requestId: meta.requestId,
    reason: meta.reason,
    details: { revocationId: row.id, selector, value },
    names,
    ...(selector === "jti" && { jti: value }),
    ...(selector === "agent" && { agentId: value }),
    ...(selector === "grant" && { grantId: value }),
    ...(selector === "upstream" && { upstream: value }),
    ...(selector === "environment" && { environment: value }),
  });
  return { id: row.id, selector, value, revokedAt: row.createdAt, expiresAt, reason: row.reason, actor: row.actor };
}

export type KillSwitchView = {
  engaged: boolean;
  engagedAt: Date | null;
  engagedBy: string | null;
  reason: string | null;
};

const KILL_SWITCH = { selector: "kill_switch", liftedAt: null } as const;

export async function killSwitchStatus(prisma: Pick<PrismaClient, "revocation">): Promise<KillSwitchView> {
  const row = await prisma.revocation.findFirst({ where: KILL_SWITCH, orderBy: { createdAt: "asc" } });
  return row
    ? { engaged: true, engagedAt: row.createdAt, engagedBy: row.actor, reason: row.reason }
    : { engaged: false, engagedAt: null, engagedBy: null, reason: null };
}

/**
 * Engages the kill switch unless it already is (then nothing is written: `created` is false). Returns the
 * record for the caller to apply to its own state after commit.
 */
export async function engageKillSwitch(
  prisma: PrismaClient,
  meta: Meta,
): Promise<{ status: KillSwitchView; created: boolean; record: RevocationRecord | null }> {
  return prisma.$transaction(async (tx) => {
    const current = await killSwitchStatus(tx);
    if (current.engaged) return { status: current, created: false, record: null };
    const row = await tx.revocation.create({
      data: { id: randomUUID(), selector: "kill_switch", value: "*", reason: meta.reason, actor: meta.actor },
    });
    await appendAudit(tx, {
      kind: "kill_switch.engaged",
      actor: meta.actor,
      requestId: meta.requestId,
      reason: meta.reason,
      details: { revocationId: row.id },
    });
    return {
      status: { engaged: true, engagedAt: row.createdAt, engagedBy: row.actor, reason: row.reason },
      created: true,
      record: { selector: "kill_switch", id: row.id, lifted: false },
    };
  });
}

/** Lifts the kill switch (every engaged row, should two replicas have engaged it at once); 409 if not engaged. */
export async function liftKillSwitch(prisma: PrismaClient, meta: Meta): Promise<RevocationRecord[]> {
  return prisma.$transaction(async (tx) => {
    const engaged = await tx.revocation.findMany({ where: KILL_SWITCH, select: { id: true } });
    if (engaged.length === 0) throw conflict("the kill switch is not engaged");
    const ids = engaged.map((r) => r.id);
    await tx.revocation.updateMany({ where: { id: { in: ids } }, data: { liftedAt: new Date(), liftedBy: meta.actor } });
    await appendAudit(tx, {
      kind: "kill_switch.lifted",
      actor: meta.actor,
      requestId: meta.requestId,
      reason: meta.reason,
      details: { revocationIds: ids },
    });
    return ids.map((id) => ({ selector: "kill_switch", id, lifted: true }) as const);
  });
}
