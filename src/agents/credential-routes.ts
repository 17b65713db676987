import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf, installAdminAuth } from "../admin/auth.js";
import { idParam } from "../http/schemas.js";
import { rotateSecretBody, type Agents } from "./agents.js";
import { agentJwksBody } from "./client-keys.js";

export type AgentCredentialRouteDeps = { prisma: PrismaClient; agents: Agents; clientSecretOverlapSeconds: number };

/** Admin: how an agent authenticates, its client secret (rotated with an overlap) and its public keys. */
export async function agentCredentialRoutes(app: FastifyInstance, deps: AgentCredentialRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  const r = app.withTypeProvider<ZodTypeProvider>();
  const manage = { permission: "manage" } as const;

  r.post(
    "/v1/agents/:id/rotate-secret",
    { config: manage, schema: { params: idParam, body: rotateSecretBody.nullish() } },
    async (req, reply) => {
      const overlapSeconds = req.body?.overlapSeconds ?? deps.clientSecretOverlapSeconds;
      const rotated = await deps.agents.rotateSecret(req.params.id, overlapSeconds, { actor: actorOf(req), requestId: req.id });
      return reply.header("cache-control", "no-store").send(rotated);
    },
  );
  r.put("/v1/agents/:id/jwks", { config: manage, schema: { params: idParam, body: agentJwksBody } }, async (req) =>
    deps.agents.setJwks(req.params.id, req.body, { actor: actorOf(req), requestId: req.id }),
  );
}
