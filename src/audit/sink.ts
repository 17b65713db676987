import type { FastifyBaseLogger } from "fastify";
import type { PrismaClient } from "@prisma/client";
import { request } from "undici";
import { runPeriodically } from "../util/periodic.js";
import { auditEventView } from "./audit.js";

export type AuditSinkOptions = {
  url: string;
  /** Sent as the Authorization header, e.g. a SIEM collector's token. */
  authorization?: string;
  /** This replica, as recorded on the lease. */
  owner: string;
  intervalMs: number;
  batchSize: number;
  timeoutMs: number;
};

const LEASE_MS = 30_000;

/**
 * One round of forwarding audit events to the webhook, oldest first, as JSON Lines (the export format,
 * chain hashes included, so the receiver can check the chain too). Events are read back from the
 * database, so events written by every replica go out once, in chain order, including those written
 * inside transactions, which are sent only after they committed.
 *
 * One replica ships at a time: the one holding the lease on the AuditSinkCursor row, renewed every round
 * and taken over by another replica once it lapses. The cursor moves only after a 2xx answer, so delivery
 * is at least once: after a crash between the two a batch is sent again, and the receiver can drop
 * repeats by event id. Returns how many events were sent.
 */
export async function shipAuditEvents(prisma: PrismaClient, options: AuditSinkOptions): Promise<number> {
  const now = new Date();
  const claimed = await prisma.auditSinkCursor.updateMany({
    where: { id: 1, OR: [{ leaseOwner: options.owner }, { leaseOwner: null }, { leaseUntil: { lt: now } }] },
    data: { leaseOwner: options.owner, leaseUntil: new Date(now.getTime() + LEASE_MS) },
  });
  if (claimed.count === 0) return 0;
  let shipped = 0;
  for (;;) {
    const cursor = await prisma.auditSinkCursor.findUniqueOrThrow({ where: { id: 1 } });
    if (cursor.leaseOwner !== options.owner) return shipped;
    const rows = await prisma.auditEvent.findMany({ where: { id: { gt: cursor.lastId } }, orderBy: { id: "asc" }, take: options.batchSize });
    if (rows.length === 0) return shipped;
    await post(options, rows.map((r) => JSON.stringify(auditEventView(r)) + "\n").join(""));
    await prisma.auditSinkCursor.updateMany({
      where: { id: 1, leaseOwner: options.owner },
      data: { lastId: rows[rows.length - 1]!.id },
    });
    shipped += rows.length;
    if (rows.length < options.batchSize) return shipped;
  }
}

async function post(options: AuditSinkOptions, body: string): Promise<void> {
  const res = await request(options.url, {
    method: "POST",
    headers: {
      "content-type": "application/x-ndjson",
      ...(options.authorization && { authorization: options.authorization }),
    },
    body,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  await res.body.dump();
  if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`audit webhook answered ${res.statusCode}`);
}

/** Ships every `intervalMs`; on stop, gives the lease up so another replica takes over at once. */
export function startAuditSink(prisma: PrismaClient, options: AuditSinkOptions, log: FastifyBaseLogger): { stop(): Promise<void> } {
  const round = async () => {
    try {
      await shipAuditEvents(prisma, options);
    } catch (err) {
      log.warn({ err }, "audit webhook delivery failed; retrying");
    }
  };
  const periodic = runPeriodically(round, options.intervalMs, { immediately: true });
  return {
    async stop() {
      await periodic.stop();
      await prisma.auditSinkCursor
        .updateMany({ where: { id: 1, leaseOwner: options.owner }, data: { leaseOwner: null, leaseUntil: null } })
        .catch((err: unknown) => log.warn({ err }, "could not release the audit webhook lease"));
    },
  };
}
