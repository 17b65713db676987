import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { installAdminAuth } from "./auth.js";
import { permissionsOf, ROLES } from "./keys.js";

const whoamiResponse = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  permissions: z.array(z.string()),
});
const named = z.array(z.object({ id: z.string(), name: z.string() }));
const directoryResponse = z.object({ agents: named, grants: named, adminKeys: named });

/**
 * Who is who, for clients such as the console: `GET /v1/whoami` (the calling key's role and permissions,
 * so a client offers only what the key may do) and `GET /v1/directory` (agent, grant and admin key names
 * by id, to label audit events and approvals). Both need only `read_audit`, which every role has: the
 * audit log already records these names.
 */
export async function directoryRoutes(app: FastifyInstance, deps: { prisma: PrismaClient }): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const config = { permission: "read_audit" } as const;

  r.get("/v1/whoami", { config, schema: { summary: "The calling admin key and what it may do", response: { 200: whoamiResponse } } }, async (req) => {
    const { id, name, role } = req.admin!;
    return { id, name, role, permissions: [...permissionsOf(role)] };
  });

  r.get("/v1/directory", { config, schema: { summary: "Agent, grant and admin key names by id", response: { 200: directoryResponse } } }, async () => {
    const select = { id: true, name: true } as const;
    const [agents, grants, adminKeys] = await Promise.all([
      deps.prisma.agent.findMany({ select, orderBy: { name: "asc" } }),
      deps.prisma.grant.findMany({ select, orderBy: { name: "asc" } }),
      // Revoked keys too: the audit log still names them as actors.
      deps.prisma.adminKey.findMany({ select, orderBy: { createdAt: "asc" } }),
    ]);
    return { agents, grants, adminKeys };
  });
}
