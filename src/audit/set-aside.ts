import type { PrismaClient } from "@prisma/client";

/** An event the database refused, as `GET /v1/audit/set-aside` shows it (src/audit/log.ts sets them aside). */
export type SetAsideView = {
  id: number;
  at: Date;
  eventId: string;
  /** The database's message. */
  reason: string;
  /** The event as it was to be written (its text already made storable). */
  event: unknown;
};

/** The stored event is JSON text; a row edited into something else is shown as that text rather than failing the page. */
const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** Set-aside events, newest first, a page at a time (`cursor`: the id of the last one of the previous page). */
export async function listSetAside(
  prisma: PrismaClient,
  q: { limit: number; cursor?: number },
): Promise<{ events: SetAsideView[]; nextCursor: string | null }> {
  const rows = await prisma.auditSetAside.findMany({
    where: q.cursor === undefined ? {} : { id: { lt: q.cursor } },
    orderBy: { id: "desc" },
    take: q.limit + 1,
  });
  const page = rows.slice(0, q.limit);
  return {
    events: page.map((row) => ({ id: row.id, at: row.at, eventId: row.eventId, reason: row.reason, event: parsed(row.event) })),
    nextCursor: rows.length > q.limit ? String(page[page.length - 1]!.id) : null,
  };
}
