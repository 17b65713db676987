import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { HTTP_METHODS } from "../policy/decide.js";
import { ERROR_CODES, type ErrorCode } from "../sdk/codes.js";
import { exportAudit, queryAudit, type AuditFilters } from "./audit.js";
import type { CheckpointKeys } from "./chain.js";
import { listSetAside } from "./set-aside.js";
import { verifyAuditChain } from "./verify.js";
import type { AuditLog } from "./log.js";

const ref = z.string().min(1).max(200);
// Within what the database holds (a signed 64-bit id; years 1 to 9999), so a bad filter is a 400, not a 500.
const eventId = z
  .string()
  .regex(/^\d{1,19}$/, "an event id")
  .refine((id) => /^\d{1,19}$/.test(id) && BigInt(id) <= 9_223_372_036_854_775_807n, "an event id");
const time = z.iso.datetime({ offset: true }).refine((t) => {
  const year = new Date(t).getUTCFullYear();
  return year >= 1 && year <= 9999;
}, "out of range");
const filterFields = {
  agentId: ref.optional(),
  grantId: ref.optional(),
  /** The names recorded with the events (details.names), so a deleted agent or grant is found by name. */
  agentName: ref.optional(),
  grantName: ref.optional(),
  jti: ref.optional(),
  upstream: ref.optional(),
  environment: ref.optional(),
  decision: z.enum(["allow", "deny"]).optional(),
  method: z.enum(HTTP_METHODS).optional(),
  pathPrefix: z.string().startsWith("/").max(2000).optional(),
  kind: z.string().max(50).optional(),
  /** A refusal code from the catalogue (docs/errors.md): which calls were refused, and why. */
  reason: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]).optional(),
  since: time.optional(),
  until: time.optional(),
};
const auditQuery = z.strictObject({
  ...filterFields,
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: eventId.optional(),
});
const setAsideQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().regex(/^\d{1,9}$/, "an id").optional(),
});
export const exportQuery = z.strictObject({ ...filterFields, afterId: eventId.optional() });

export const filtersOf = (q: z.infer<typeof exportQuery>): AuditFilters => ({
  ...q,
  since: q.since ? new Date(q.since) : undefined,
  until: q.until ? new Date(q.until) : undefined,
});

export type AuditRouteDeps = { prisma: PrismaClient; auditCheckpointKeys: CheckpointKeys; auditLog: Pick<AuditLog, "flush"> };

/** How long a reader waits for this broker's own events to reach the database (src/audit/log.ts) before reading. */
const READ_OWN_EVENTS_MS = 2_000;

/**
 * The preHandler of every route that reads the audit log (or counts from it): what this broker has
 * recorded is in the database before it is read, so a reader sees its own calls.
 */
export const afterOwnEvents = (auditLog: Pick<AuditLog, "flush">) => async (): Promise<void> => void (await auditLog.flush(READ_OWN_EVENTS_MS));

/** `GET /v1/audit`, `/v1/audit/export`, `/v1/audit/verify`, `/v1/audit/set-aside`; registered in the admin scope, which authenticates. */
export function auditRoutes(app: FastifyInstance, deps: AuditRouteDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const config = { permission: "read_audit" } as const;
  const preHandler = afterOwnEvents(deps.auditLog);

  r.get("/v1/audit", { config, preHandler, schema: { querystring: auditQuery } }, async (req) => {
    const { cursor, limit, ...filters } = req.query;
    return queryAudit(deps.prisma, { ...filtersOf(filters), limit, cursor: cursor ? BigInt(cursor) : undefined });
  });

  r.get("/v1/audit/export", { config, preHandler, schema: { querystring: exportQuery } }, async (req, reply) => {
    const { afterId, ...filters } = req.query;
    const events = exportAudit(deps.prisma, { ...filtersOf(filters), afterId: afterId ? BigInt(afterId) : undefined });
    const lines = Readable.from(
      (async function* () {
        for await (const event of events) yield JSON.stringify(event) + "\n";
      })(),
    );
    return reply.type("application/x-ndjson").header("cache-control", "no-store").send(lines);
  });

  r.get("/v1/audit/verify", { config, preHandler }, async () => verifyAuditChain(deps.prisma, deps.auditCheckpointKeys));

  // Events the database refused and that were set aside (each has an audit.set_aside notice in the chain).
  r.get("/v1/audit/set-aside", { config, preHandler, schema: { querystring: setAsideQuery } }, async (req) =>
    listSetAside(deps.prisma, { limit: req.query.limit, cursor: req.query.cursor === undefined ? undefined : Number(req.query.cursor) }),
  );
}
