import type { Prisma, PrismaClient } from "@prisma/client";
import { contentHash } from "./chain.js";

export type AuditKind =
  | "proxy"
  | "proxy.response"
  | "token.issued"
  | "token.refused"
  | "revocation.created"
  | "kill_switch.engaged"
  | "kill_switch.lifted"
  | "admin.change"
  | "approval.requested"
  | "approval.notified"
  | "approval.decided"
  | "approval.collected";

export type AuditInput = {
  kind: AuditKind;
  actor: string;
  requestId?: string;
  agentId?: string;
  jti?: string;
  grantId?: string;
  upstream?: string;
  environment?: string;
  method?: string;
  path?: string;
  decision?: "allow" | "deny";
  reason?: string;
  status?: number;
  latencyMs?: number;
  /** Never secrets: callers pass ids, names and non-secret settings only. */
  details?: Prisma.InputJsonValue;
};

type AuditWriter = Pick<PrismaClient, "auditEvent"> | Prisma.TransactionClient;

/**
 * The row to insert for an event, stamped now. The database's link trigger gives it its id and chain
 * hashes (migration 0002); the content hash is computed here, from exactly the values written.
 */
export function auditRow(event: AuditInput) {
  const at = new Date();
  return { ...event, at, contentHash: contentHash({ ...event, at }) };
}

/**
 * Appends one event. Callers await it before answering, so a failed write fails the request. (The proxy,
 * which writes most events, appends through an AuditBatcher instead: src/audit/batch.ts.)
 */
export async function appendAudit(db: AuditWriter, event: AuditInput): Promise<void> {
  await db.auditEvent.create({ data: auditRow(event), select: { id: true } });
}

export type AuditFilters = {
  agentId?: string;
  grantId?: string;
  jti?: string;
  upstream?: string;
  environment?: string;
  decision?: "allow" | "deny";
  method?: string;
  /** Matches the recorded (normalised) path literally: `_` and `%` are not wildcards. */
  pathPrefix?: string;
  kind?: string;
  since?: Date;
  until?: Date;
};

/** Prisma hands startsWith to LIKE as is: escape its wildcards (backslash is PostgreSQL's LIKE escape). */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function whereOf(f: AuditFilters): Prisma.AuditEventWhereInput {
  return {
    agentId: f.agentId,
    grantId: f.grantId,
    jti: f.jti,
    upstream: f.upstream,
    environment: f.environment,
    decision: f.decision,
    method: f.method,
    kind: f.kind,
    ...(f.pathPrefix !== undefined && { path: { startsWith: likeLiteral(f.pathPrefix) } }),
    at: { gte: f.since, lte: f.until },
  };
}

export type AuditEventRow = Prisma.AuditEventGetPayload<object>;
export type AuditEventView = Omit<AuditEventRow, "id"> & { id: string };

/** How events leave the broker (API, export, webhook): the id as a string, since JSON has no 64-bit integers. */
export const auditEventView = (row: AuditEventRow): AuditEventView => ({ ...row, id: row.id.toString() });

export async function queryAudit(
  prisma: PrismaClient,
  q: AuditFilters & {
    limit: number;
    /** The id of the last event of the previous page; pages go from newest to oldest. */
    cursor?: bigint;
  },
): Promise<{ events: AuditEventView[]; nextCursor: string | null }> {
  const rows = await prisma.auditEvent.findMany({
    where: { ...whereOf(q), ...(q.cursor !== undefined && { id: { lt: q.cursor } }) },
    orderBy: { id: "desc" },
    take: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  return {
    events: page.map(auditEventView),
    nextCursor: rows.length > q.limit ? page[page.length - 1]!.id.toString() : null,
  };
}

const EXPORT_BATCH = 1000;

/**
 * Every matching event after `afterId`, oldest first (the chain's order, and what a SIEM resuming from
 * the last id it has wants), read in batches so memory stays flat whatever the size of the log.
 */
export async function* exportAudit(prisma: PrismaClient, q: AuditFilters & { afterId?: bigint }): AsyncGenerator<AuditEventView> {
  let after = q.afterId ?? -1n;
  for (;;) {
    const rows = await prisma.auditEvent.findMany({
      where: { ...whereOf(q), id: { gt: after } },
      orderBy: { id: "asc" },
      take: EXPORT_BATCH,
    });
    for (const row of rows) yield auditEventView(row);
    if (rows.length < EXPORT_BATCH) return;
    after = rows[rows.length - 1]!.id;
  }
}
