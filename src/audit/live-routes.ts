import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { installAdminAuth } from "../admin/auth.js";
import { findAdminByKey } from "../admin/keys.js";
import { bearerToken } from "../http/auth-header.js";
import { proxyActivity } from "./activity.js";
import { exportAudit, type AuditFilters } from "./audit.js";
import { exportQuery, filtersOf } from "./routes.js";
import type { AuditLog } from "./log.js";
import { afterOwnEvents } from "./routes.js";

export type AuditLiveRouteDeps = { prisma: PrismaClient; auditLog: Pick<AuditLog, "flush"> };

/** How often an open stream looks for new events (and checks that its admin key is still valid). */
const POLL_MS = 1_000;
/** A comment line this often keeps proxies from closing an idle stream, and lets clients see it is alive. */
const HEARTBEAT_MS = 15_000;
/** Streams end after this; the client reconnects with the last id it saw. Bounds every connection. */
const MAX_STREAM_MS = 5 * 60_000;

// The stream starts after a given event: the client first reads a page of GET /v1/audit, then follows on.
const streamQuery = exportQuery.required({ afterId: true });
const activityQuery = z.strictObject({ minutes: z.coerce.number().int().min(1).max(1440).default(60) });
const activityResponse = z.object({
  minutes: z.array(z.object({ minute: z.iso.datetime(), allowed: z.number().int(), denied: z.number().int() })),
});

const sseEvent = (id: string, data: unknown) => `id: ${id}\nevent: audit\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * Every event after `afterId` matching the filters, as server-sent events, then each new one as it is
 * appended (by any replica: it reads the shared log). Ends when `signal` aborts (client gone, server
 * closing), after MAX_STREAM_MS, or as soon as the admin key that opened it is revoked.
 */
async function* auditEvents(
  prisma: PrismaClient,
  adminKey: string,
  filters: AuditFilters,
  afterId: bigint,
  signal: AbortSignal,
): AsyncGenerator<string> {
  const endAt = Date.now() + MAX_STREAM_MS;
  let lastId = afterId;
  let lastWrite = Date.now();
  yield ": stream open\n\n";
  while (!signal.aborted && Date.now() < endAt && (await findAdminByKey(prisma, adminKey))) {
    for await (const event of exportAudit(prisma, { ...filters, afterId: lastId })) {
      yield sseEvent(event.id, event);
      lastId = BigInt(event.id);
      lastWrite = Date.now();
    }
    if (Date.now() - lastWrite >= HEARTBEAT_MS) {
      yield ": keep-alive\n\n";
      lastWrite = Date.now();
    }
    await sleep(POLL_MS, undefined, { signal }).catch(() => {});
  }
}

/**
 * `GET /v1/audit/stream` (live tail, server-sent events) and `GET /v1/audit/activity` (calls and denials
 * per minute), for the console; read_audit, authenticated with the admin key in the Authorization header
 * like every admin route (the console reads the stream with fetch, not EventSource, for that reason).
 */
export async function auditLiveRoutes(app: FastifyInstance, deps: AuditLiveRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const config = { permission: "read_audit" } as const;
  const preHandler = afterOwnEvents(deps.auditLog);

  // Open streams would otherwise hold app.close() until they time out. Each is ended, and waited for,
  // before the server stops: then its connection is idle, and closed with the others.
  const open = new Map<AbortController, Promise<void>>();
  app.addHook("preClose", async () => {
    for (const stop of open.keys()) stop.abort();
    await Promise.all(open.values());
  });

  r.get(
    "/v1/audit/stream",
    { config, preHandler, schema: { summary: "Audit events after afterId, then live (text/event-stream)", querystring: streamQuery } },
    async (req, reply) => {
      const { afterId, ...filters } = req.query;
      const stop = new AbortController();
      const closed = new Promise<void>((resolve) =>
        reply.raw.once("close", () => {
          stop.abort();
          open.delete(stop);
          resolve();
        }),
      );
      open.set(stop, closed);
      const events = auditEvents(deps.prisma, bearerToken(req), filtersOf(filters), BigInt(afterId), stop.signal);
      return reply
        .type("text/event-stream")
        .headers({ "cache-control": "no-store", "x-accel-buffering": "no" })
        .send(Readable.from(events));
    },
  );

  r.get(
    "/v1/audit/activity",
    { config, preHandler, schema: { summary: "Proxied calls per minute, allowed and denied", querystring: activityQuery, response: { 200: activityResponse } } },
    async (req) => ({ minutes: await proxyActivity(deps.prisma, req.query.minutes) }),
  );
}
