import type { FastifyInstance, FastifyRequest } from "fastify";
import type { PrismaClient } from "@prisma/client";
import { actorOf, installAdminAuth } from "../admin/auth.js";
import type { Grants } from "../grants/grants.js";
import { bearerToken } from "../http/auth-header.js";
import { notFound } from "../http/errors.js";
import type { RevocationService } from "../revocation/service.js";
import type { TokenVerifier } from "../tokens/verify.js";
import type { Upstreams } from "../upstreams/upstreams.js";
import type { ForwardProxyCa } from "./ca.js";
import { originOf } from "./hosts.js";
import { placeholderValue } from "./placeholders.js";

export type ForwardProxyRouteDeps = {
  prisma: PrismaClient;
  forwardProxyCa: ForwardProxyCa;
  verifyToken: TokenVerifier;
  revocations: Pick<RevocationService, "assertNotRevoked">;
  grants: Pick<Grants, "findByIdOrName">;
  upstreams: Pick<Upstreams, "findByName">;
};

const meta = (request: FastifyRequest) => ({ actor: actorOf(request), requestId: request.id });

/** The CA certificate agents must trust, public: it is what their clients check the proxy's certificates against. */
export async function forwardProxyPublicRoutes(app: FastifyInstance, deps: ForwardProxyRouteDeps): Promise<void> {
  app.get("/v1/forward-proxy/ca.pem", async (_request, reply) =>
    reply.type("application/x-pem-file").header("cache-control", "no-cache").send(await deps.forwardProxyCa.certificatePem()),
  );
}

/**
 * Agent-facing, for `keyward run`: where the upstream of this token's grant lives (so the run's relay
 * knows which token a tunnel to it takes) and the placeholder values for the variables it names.
 * Nothing here is secret: the placeholders are worthless by design.
 */
export async function forwardProxyAgentRoutes(app: FastifyInstance, deps: ForwardProxyRouteDeps): Promise<void> {
  app.get("/v1/forward-proxy/env", async (request, reply) => {
    const token = await deps.verifyToken(bearerToken(request));
    deps.revocations.assertNotRevoked(token);
    const grant = await deps.grants.findByIdOrName(token.grantId);
    const upstream = grant && (await deps.upstreams.findByName(grant.upstream));
    const origin = upstream && originOf(upstream.name, upstream.baseUrl);
    if (!upstream || !origin) throw notFound("grant");
    reply.header("cache-control", "no-store");
    return {
      upstream: upstream.name,
      scheme: origin.scheme.slice(0, -1),
      host: origin.host,
      port: origin.port,
      placeholders: Object.fromEntries(upstream.placeholders.map((name) => [name, placeholderValue(name)])),
    };
  });
}

/** Rotating the CA: a new key and certificate; clients must fetch the new certificate to keep working. */
export async function forwardProxyAdminRoutes(app: FastifyInstance, deps: ForwardProxyRouteDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  app.post("/v1/forward-proxy/ca/rotate", { config: { permission: "manage" } }, async (request, reply) => {
    const rotated = await deps.forwardProxyCa.rotate(meta(request));
    return reply.code(201).send({ id: rotated.id, certificate: rotated.certPem });
  });
}
