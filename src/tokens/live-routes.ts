import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { installAdminAuth } from "../admin/auth.js";
import type { AuditLog } from "../audit/log.js";
import { afterOwnEvents } from "../audit/routes.js";
import { listLiveTokens } from "./live.js";

export type LiveTokenRouteDeps = { prisma: PrismaClient; auditLog: Pick<AuditLog, "flush"> };

const ref = z.string().min(1).max(100);
const listQuery = z.strictObject({ agentId: ref.optional(), grantId: ref.optional() });
const named = z.object({ id: z.string(), name: z.string().nullable() });
const liveTokenList = z.object({
  tokens: z.array(
    z.object({
      jti: z.string(),
      agent: named,
      grant: named,
      upstream: z.string(),
      environment: z.string().nullable(),
      methods: z.array(z.string()),
      paths: z.array(z.string()),
      parentJti: z.string().nullable(),
      issuedAt: z.iso.datetime(),
      expiresAt: z.iso.datetime(),
      calls: z.object({ allowed: z.number().int(), denied: z.number().int() }),
    }),
  ),
});

/**
 * `GET /v1/tokens` (admin, security): the tokens live now, with their agent's and grant's names and the
 * calls made with each, for whoever decides what to revoke. (`POST /v1/tokens` is the agents' endpoint.)
 * The calls are counted from the audit log, so this broker's own events are shipped first.
 */
export async function liveTokenRoutes(app: FastifyInstance, deps: LiveTokenRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  app.withTypeProvider<ZodTypeProvider>().get(
    "/v1/tokens",
    {
      config: { permission: "revoke" },
      preHandler: afterOwnEvents(deps.auditLog),
      schema: { summary: "Live tokens: not expired, not revoked", querystring: listQuery, response: { 200: liveTokenList } },
    },
    async (req, reply) => reply.header("cache-control", "no-store").send({ tokens: await listLiveTokens(deps.prisma, req.query) }),
  );
}
