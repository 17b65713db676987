import type { FastifyInstance, FastifyRequest } from "fastify";
import type { PrismaClient } from "@prisma/client";
import { actorOf, installAdminAuth } from "../admin/auth.js";
import type { ForwardProxyCa } from "./ca.js";

export type ForwardProxyRouteDeps = { prisma: PrismaClient; forwardProxyCa: ForwardProxyCa };

const meta = (request: FastifyRequest) => ({ actor: actorOf(request), requestId: request.id });

/** The CA certificate agents must trust, public: it is what their clients check the proxy's certificates against. */
export async function forwardProxyPublicRoutes(app: FastifyInstance, deps: ForwardProxyRouteDeps): Promise<void> {
  app.get("/v1/forward-proxy/ca.pem", async (_request, reply) =>
    reply.type("application/x-pem-file").header("cache-control", "no-cache").send(await deps.forwardProxyCa.certificatePem()),
  );
}

/** Rotating the CA: a new key and certificate; clients must fetch the new certificate to keep working. */
export async function forwardProxyAdminRoutes(app: FastifyInstance, deps: ForwardProxyRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  app.post("/v1/forward-proxy/ca/rotate", { config: { permission: "manage" } }, async (request, reply) => {
    const rotated = await deps.forwardProxyCa.rotate(meta(request));
    return reply.code(201).send({ id: rotated.id, certificate: rotated.certPem });
  });
}
