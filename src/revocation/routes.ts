import type { FastifyInstance, FastifyRequest } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../admin/auth.js";
import { slug } from "../http/schemas.js";
import type { AuditLog } from "../audit/log.js";
import { awaitTokenRecord, engageKillSwitch, killSwitchStatus, liftKillSwitch, recordRevocation } from "./revoke.js";
import type { RevocationService } from "./service.js";

const reasonField = { reason: z.string().max(500).optional() };
const id = z.string().min(1).max(100);
const pastTime = z.iso
  .datetime({ offset: true })
  .refine((t) => Date.parse(t) <= Date.now(), "must not be in the future; to freeze tokens issued from now on, use the kill switch");

const revocationBody = z.union([
  z.strictObject({ jti: id, ...reasonField }),
  z.strictObject({ agentId: id, ...reasonField }),
  z.strictObject({ grantId: id, ...reasonField }),
  z.strictObject({ upstream: slug, ...reasonField }),
  z.strictObject({ environment: slug, ...reasonField }),
  z.strictObject({ issuedBefore: pastTime, ...reasonField }),
  z.strictObject({ all: z.literal(true), ...reasonField }),
]);
// A body is optional; Fastify hands a missing one over as null.
const killSwitchBody = z.strictObject(reasonField).nullish();

export type RevocationRouteDeps = { prisma: PrismaClient; revocations: RevocationService; auditLog: Pick<AuditLog, "flush"> };

const meta = (request: FastifyRequest, reason: string | undefined) => ({ actor: actorOf(request), requestId: request.id, reason });

/**
 * Revocations and the kill switch; registered in the admin scope, which authenticates. The security role
 * may revoke and engage the kill switch in an incident; lifting it needs an admin (`manage`), so whoever
 * stops the bleeding is not alone in deciding it has stopped.
 */
export function revocationRoutes(app: FastifyInstance, deps: RevocationRouteDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const revoke = { permission: "revoke" } as const;

  r.post("/v1/revocations", { config: revoke, schema: { body: revocationBody } }, async (req, reply) => {
    const { reason, ...given } = req.body;
    const target = "issuedBefore" in given ? { issuedBefore: new Date(given.issuedBefore) } : given;
    // A token issued a moment ago may still be on its way to the database (its 404 comes from recordRevocation).
    if ("jti" in target) await awaitTokenRecord(deps.prisma, deps.auditLog, target.jti);
    const revocation = await deps.prisma.$transaction((tx) => recordRevocation(tx, target, meta(req, reason)));
    await deps.revocations.committed(revocation);
    return reply.code(201).send(revocation);
  });
  r.get("/v1/revocations", { config: revoke }, async () => ({
    revocations: await deps.prisma.revocation.findMany({ orderBy: { createdAt: "desc" }, take: 1000 }),
  }));

  r.get("/v1/kill-switch", { config: revoke }, async () => killSwitchStatus(deps.prisma));
  r.post("/v1/kill-switch", { config: revoke, schema: { body: killSwitchBody } }, async (req, reply) => {
    const { status, created, record } = await engageKillSwitch(deps.prisma, meta(req, req.body?.reason));
    if (record) await deps.revocations.committed(record);
    return reply.code(created ? 201 : 200).send(status);
  });
  r.delete("/v1/kill-switch", { config: { permission: "manage" }, schema: { body: killSwitchBody } }, async (req) => {
    const lifted = await liftKillSwitch(deps.prisma, meta(req, req.body?.reason));
    for (const record of lifted) deps.revocations.applyCommitted(record);
    // A lift frees calls: no replica must refuse them longer than it takes to hear it, so no wait.
    return killSwitchStatus(deps.prisma);
  });
}
