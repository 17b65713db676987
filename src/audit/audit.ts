import type { Prisma, PrismaClient } from "@prisma/client";

export type AuditKind =
  | "proxy"
  | "proxy.response"
  | "token.issued"
  | "token.refused"
  | "revocation.created"
  | "admin.change";

export type AuditInput = {
  kind: AuditKind;
  actor: string;
  requestId?: string;
  agentId?: string;
  jti?: string;
  grantId?: string;
  upstream?: string;
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

/** Appends one event. Callers await it before answering, so a failed write fails the request. */
export async function appendAudit(db: AuditWriter, event: AuditInput): Promise<void> {
  await db.auditEvent.create({ data: event });
}

export type AuditQuery = {
  agentId?: string;
  upstream?: string;
  decision?: "allow" | "deny";
  kind?: string;
  since?: Date;
  until?: Date;
  limit: number;
  /** The id of the last event of the previous page; pages go from newest to oldest. */
  cursor?: bigint;
};

export type AuditEventView = Omit<Prisma.AuditEventGetPayload<object>, "id"> & { id: string };

export async function queryAudit(
  prisma: PrismaClient,
  q: AuditQuery,
): Promise<{ events: AuditEventView[]; nextCursor: string | null }> {
  const rows = await prisma.auditEvent.findMany({
    where: {
      agentId: q.agentId,
      upstream: q.upstream,
      decision: q.decision,
      kind: q.kind,
      at: { gte: q.since, lte: q.until },
      ...(q.cursor !== undefined && { id: { lt: q.cursor } }),
    },
    orderBy: { id: "desc" },
    take: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  return {
    events: page.map((r) => ({ ...r, id: r.id.toString() })),
    nextCursor: rows.length > q.limit ? page[page.length - 1]!.id.toString() : null,
  };
}
