import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { PrismaClient } from "@prisma/client";
import { z } from "zod";
import { createAgentBody, type Agents } from "../agents/agents.js";
import { appendAudit } from "../audit/audit.js";
import { auditRoutes, type AuditRouteDeps } from "../audit/routes.js";
import { ADVISORY_LOCKS, lockForTransaction } from "../db/locks.js";
import { createGrantBody, updateGrantBody, type Grants } from "../grants/grants.js";
import { conflict, notFound } from "../http/errors.js";
import { displayName, idParam, nameParam } from "../http/schemas.js";
import { revocationRoutes, type RevocationRouteDeps } from "../revocation/routes.js";
import { createUpstreamBody, setSecretBody, updateUpstreamBody, type Upstreams } from "../upstreams/upstreams.js";
import { actorOf, installAdminAuth } from "./auth.js";
import { createAdminKey, ROLES } from "./keys.js";

export type AdminDeps = RevocationRouteDeps &
  AuditRouteDeps & {
    prisma: PrismaClient;
    upstreams: Upstreams;
    agents: Agents;
    grants: Grants;
  };

const meta = (request: FastifyRequest) => ({ actor: actorOf(request), requestId: request.id });

/** The admin REST API: thin routes over the domain services, each declaring the permission it needs. */
export async function adminRoutes(app: FastifyInstance, deps: AdminDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const manage = { permission: "manage" } as const;

  // Upstreams
  r.post("/v1/upstreams", { config: manage, schema: { body: createUpstreamBody } }, async (req, reply) =>
    reply.code(201).send(await deps.upstreams.create(req.body, meta(req))),
  );
  r.get("/v1/upstreams", { config: manage }, async () => ({ upstreams: await deps.upstreams.list() }));
  r.get("/v1/upstreams/:name", { config: manage, schema: { params: nameParam } }, async (req) =>
    deps.upstreams.get(req.params.name),
  );
  r.patch("/v1/upstreams/:name", { config: manage, schema: { params: nameParam, body: updateUpstreamBody } }, async (req) =>
    deps.upstreams.update(req.params.name, req.body, meta(req)),
  );
  r.put("/v1/upstreams/:name/secret", { config: manage, schema: { params: nameParam, body: setSecretBody } }, async (req) =>
    deps.upstreams.setSecret(req.params.name, req.body.secret, meta(req)),
  );
  r.delete("/v1/upstreams/:name", { config: manage, schema: { params: nameParam } }, async (req, reply) => {
    await deps.upstreams.remove(req.params.name, meta(req));
    return reply.code(204).send();
  });

  // Agents
  r.post("/v1/agents", { config: manage, schema: { body: createAgentBody } }, async (req, reply) =>
    reply.code(201).header("cache-control", "no-store").send(await deps.agents.create(req.body, meta(req))),
  );
  r.get("/v1/agents", { config: manage }, async () => ({ agents: await deps.agents.list() }));
  r.get("/v1/agents/:id", { config: manage, schema: { params: idParam } }, async (req) => deps.agents.get(req.params.id));
  r.delete("/v1/agents/:id", { config: manage, schema: { params: idParam } }, async (req, reply) => {
    await deps.agents.remove(req.params.id, meta(req));
    return reply.code(204).send();
  });

  // Grants
  r.post("/v1/grants", { config: manage, schema: { body: createGrantBody } }, async (req, reply) =>
    reply.code(201).send(await deps.grants.create(req.body, meta(req))),
  );
  r.get("/v1/grants", { config: manage }, async () => ({ grants: await deps.grants.list() }));
  r.get("/v1/grants/:id", { config: manage, schema: { params: idParam } }, async (req) => deps.grants.get(req.params.id));
  r.patch("/v1/grants/:id", { config: manage, schema: { params: idParam, body: updateGrantBody } }, async (req) =>
    deps.grants.update(req.params.id, req.body, meta(req)),
  );
  r.delete("/v1/grants/:id", { config: manage, schema: { params: idParam } }, async (req, reply) => {
    await deps.grants.remove(req.params.id, meta(req));
    return reply.code(204).send();
  });

  // Admin keys
  r.post(
    "/v1/admin-keys",
    { config: manage, schema: { body: z.strictObject({ name: displayName, role: z.enum(ROLES) }) } },
    async (req, reply) => {
      const created = await deps.prisma.$transaction(async (tx) => {
        const key = await createAdminKey(tx, req.body);
        await appendAudit(tx, {
          kind: "admin.change",
          ...meta(req),
          details: { action: "admin_key.create", adminKeyId: key.id, name: req.body.name, role: req.body.role },
        });
        return key;
      });
      return reply.code(201).header("cache-control", "no-store").send({ ...created, name: req.body.name, role: req.body.role });
    },
  );
  r.get("/v1/admin-keys", { config: manage }, async () => ({
    adminKeys: await deps.prisma.adminKey.findMany({
      select: { id: true, name: true, role: true, createdAt: true, revokedAt: true },
      orderBy: { createdAt: "asc" },
    }),
  }));
  r.delete("/v1/admin-keys/:id", { config: manage, schema: { params: idParam } }, async (req, reply) => {
    await deps.prisma.$transaction(async (tx) => {
      // One revocation at a time: two admins revoking each other at once each counted the other as the
      // admin left, and both went, leaving none (and a restart does not bootstrap a database with keys).
      await lockForTransaction(tx, ADVISORY_LOCKS.adminKeyRevocation);
      const row = await tx.adminKey.findUnique({ where: { id: req.params.id } });
      if (!row || row.revokedAt) throw notFound("admin key");
      const otherAdmins = await tx.adminKey.count({ where: { role: "admin", revokedAt: null, NOT: { id: row.id } } });
      if (row.role === "admin" && otherAdmins === 0) throw conflict("refusing to revoke the last admin key");
      await tx.adminKey.update({ where: { id: row.id }, data: { revokedAt: new Date() } });
      await appendAudit(tx, { kind: "admin.change", ...meta(req), details: { action: "admin_key.revoke", adminKeyId: row.id } });
    });
    return reply.code(204).send();
  });

  revocationRoutes(app, deps);
  auditRoutes(app, deps);
}
