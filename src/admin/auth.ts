import type { FastifyInstance, FastifyRequest } from "fastify";
import type { PrismaClient } from "@prisma/client";
import { bearerToken } from "../http/auth-header.js";
import { forbidden, unauthenticated } from "../http/errors.js";
import { findAdminByKey, roleMay, type AdminPrincipal, type Permission } from "./keys.js";

declare module "fastify" {
  interface FastifyRequest {
    admin: AdminPrincipal | null;
  }
  interface FastifyContextConfig {
    /** Every admin route names the permission it needs; routes without one are refused at start. */
    permission?: Permission;
    /** Its 200 is a token issued, recorded by a token.issued audit event (its access log line is optional: src/server.ts). */
    issuesTokens?: boolean;
  }
}

/** How an admin key is named as the actor of what it does (audit events, approvals' decidedBy). */
export const ADMIN_ACTOR_PREFIX = "admin-key:";

/** The acting human as recorded in audit events. */
export const actorOf = (request: FastifyRequest) => (request.admin ? `${ADMIN_ACTOR_PREFIX}${request.admin.id}` : "anonymous");

/**
 * Authenticates every route of the given (encapsulated) admin scope with an admin key and checks the
 * route's declared permission. Installed in the admin scope only, so the proxy and the token endpoint
 * never accept admin keys.
 */
export function installAdminAuth(app: FastifyInstance, prisma: PrismaClient): void {
  app.decorateRequest("admin", null);
  app.addHook("onRoute", (route) => {
    if (!route.config?.permission) throw new Error(`admin route ${route.method} ${route.url} declares no permission`);
  });
  app.addHook("onRequest", async (request, reply) => {
    // Every admin answer (the audit log, admin keys, agents' client ids, metrics) is for the key that asked
    // only: a browser that called with it (the console, the /docs page's "Try it out") keeps no copy on
    // disk, and no cache in between stores or serves it. A route may still say more (pragma).
    reply.header("cache-control", "no-store");
    const permission = request.routeOptions.config.permission;
    if (!permission) throw forbidden("route has no permission");
    const admin = await findAdminByKey(prisma, bearerToken(request));
    if (!admin) throw unauthenticated("unauthenticated", "unknown or revoked admin key");
    if (!roleMay(admin.role, permission)) throw forbidden(`role ${admin.role} may not ${permission}`);
    request.admin = admin;
  });
}
