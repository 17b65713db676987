import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import { actorOf, installAdminAuth } from "../admin/auth.js";
import type { SigningKeys } from "./signing-keys.js";

export type SigningKeyRouteDeps = { prisma: PrismaClient; signingKeys: SigningKeys };

/** Admin: the signing keys (public facts only) and a rotation on demand. */
export async function signingKeyRoutes(app: FastifyInstance, deps: SigningKeyRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const manage = { permission: "manage" } as const;

  app.get("/v1/signing-keys", { config: manage }, async () => ({ signingKeys: await deps.signingKeys.list() }));
  app.post("/v1/signing-keys/rotate", { config: manage }, async (req, reply) =>
    reply.code(201).send(await deps.signingKeys.rotate({ actor: actorOf(req), requestId: req.id })),
  );
}
