import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { PrismaClient } from "@prisma/client";
import { actorOf, installAdminAuth } from "../admin/auth.js";
import { nameParam } from "../http/schemas.js";
import { environmentSettingsBody, type Environments } from "./environments.js";

export type EnvironmentRouteDeps = { prisma: PrismaClient; environments: Environments };

/** `GET /v1/environments`, `PUT /v1/environments/:name` (admin). */
export async function environmentRoutes(app: FastifyInstance, deps: EnvironmentRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const manage = { permission: "manage" } as const;
  r.get("/v1/environments", { config: manage }, async () => ({ environments: await deps.environments.list() }));
  r.put("/v1/environments/:name", { config: manage, schema: { params: nameParam, body: environmentSettingsBody } }, async (req) =>
    deps.environments.set(req.params.name, req.body, { actor: actorOf(req), requestId: req.id }),
  );
}
