import type { FastifyInstance } from "fastify";
import type { AuditLog } from "../audit/log.js";
import type { RevocationService } from "../revocation/service.js";
import type { TokenVerifier } from "../tokens/verify.js";
import type { Agents } from "../agents/agents.js";
import type { Grants } from "../grants/grants.js";
import type { ForwardProxyCa } from "./ca.js";
import type { UpstreamHosts } from "./hosts.js";
import { forwardProxyAdminRoutes, forwardProxyAgentRoutes, forwardProxyPublicRoutes, type ForwardProxyRouteDeps } from "./routes.js";
import { ForwardProxy, type ForwardProxyOptions } from "./server.js";

export { ForwardProxy } from "./server.js";
export { ForwardProxyCa } from "./ca.js";
export { UpstreamHosts } from "./hosts.js";

/** Transparent mode's routes on the main app (the CA certificate, the agent's environment, CA rotation). */
export async function forwardProxyRoutes(app: FastifyInstance, deps: ForwardProxyRouteDeps): Promise<void> {
  await app.register(forwardProxyPublicRoutes, deps);
  await app.register(forwardProxyAgentRoutes, deps);
  await app.register(forwardProxyAdminRoutes, deps);
}

type Deps = {
  prisma: ForwardProxyRouteDeps["prisma"];
  forwardProxyCa: ForwardProxyCa;
  /** The hosts upstreams name: the ones tunnels may go to, and the CA's name constraints. */
  hosts: UpstreamHosts;
  revocations: RevocationService;
  verifyToken: TokenVerifier;
  auditLog: Pick<AuditLog, "keep">;
  /** For the names of the agent and grant in the events of its own refusals. */
  grants: Grants;
  agents: Agents;
};

/**
 * Transparent mode's own listener, which hands every request to the main app (so the app is made ready
 * first); its routes are on the main app already (`forwardProxyRoutes`).
 */
export async function startForwardProxy(
  app: FastifyInstance,
  options: ForwardProxyOptions,
  deps: Deps,
): Promise<ForwardProxy> {
  await app.ready();
  // Created (or read) now, so that a broken CA fails the start rather than the first tunnel.
  await deps.forwardProxyCa.certificatePem();
  return ForwardProxy.start(
    {
      app,
      verifyToken: deps.verifyToken,
      revocations: deps.revocations,
      hosts: deps.hosts,
      ca: deps.forwardProxyCa,
      auditLog: deps.auditLog,
      names: { agents: deps.agents, grants: deps.grants },
      log: app.log.child({ component: "forward-proxy" }),
    },
    options,
  );
}
