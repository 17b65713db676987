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

/**
 * `GET /v1/whoami`: the calling admin key's name, role and permissions, so a client (the console) can
 * offer only what the key may do. Every role may read the audit log, so that is the permission it names.
 */
export async function whoamiRoutes(app: FastifyInstance, deps: { prisma: PrismaClient }): Promise<void> {
  installAdminAuth(app, deps.prisma);
  app.withTypeProvider<ZodTypeProvider>().get(
    "/v1/whoami",
    { config: { permission: "read_audit" }, schema: { summary: "The calling admin key and what it may do", response: { 200: whoamiResponse } } },
    async (req) => {
      const { id, name, role } = req.admin!;
      return { id, name, role, permissions: [...permissionsOf(role)] };
    },
  );
}
