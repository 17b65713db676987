import type { PrismaClient } from "@prisma/client";
import type { FastifyInstance } from "fastify";
import type { AuditLog } from "../audit/log.js";
import type { Config } from "../config/config.js";
import type { ChangeFeed } from "../change-feed/feed.js";
import type { RevocationService } from "../revocation/service.js";
import type { TokenVerifier } from "../tokens/verify.js";
import type { Vault } from "../vault/vault.js";
import { ForwardProxyCa } from "./ca.js";
import { UpstreamHosts } from "./hosts.js";
import type { Grants } from "../grants/grants.js";
import type { Upstreams } from "../upstreams/upstreams.js";
import { forwardProxyAdminRoutes, forwardProxyAgentRoutes, forwardProxyPublicRoutes } from "./routes.js";
import { ForwardProxy } from "./server.js";

export { ForwardProxy } from "./server.js";

type Deps = {
  prisma: PrismaClient;
  vault: Vault;
  revocations: RevocationService;
  changes: ChangeFeed;
  verifyToken: TokenVerifier;
  auditLog: Pick<AuditLog, "keep">;
  grants: Grants;
  upstreams: Upstreams;
};

/**
 * Transparent mode, when KEYWARD_FORWARD_PROXY_PORT is set: the CA's routes on the main app, then the
 * forward proxy's own listener, which hands every request to the main app (so the app is made ready
 * first). Off: nothing is added, and null.
 */
export async function startForwardProxyFor(
  app: FastifyInstance,
  config: Pick<Config, "forwardProxy" | "headersTimeoutMs" | "requestTimeoutMs">,
  deps: Deps,
): Promise<ForwardProxy | null> {
  if (!config.forwardProxy) return null;
  const forwardProxyCa = new ForwardProxyCa(deps.prisma, deps.vault, deps.changes);
  const routeDeps = { ...deps, forwardProxyCa };
  await app.register(forwardProxyPublicRoutes, routeDeps);
  await app.register(forwardProxyAgentRoutes, routeDeps);
  await app.register(forwardProxyAdminRoutes, routeDeps);
  await app.ready();
  // Created (or read) now, so that a broken CA fails the start rather than the first tunnel.
  await forwardProxyCa.certificatePem();
  return ForwardProxy.start(
    {
      app,
      verifyToken: deps.verifyToken,
      revocations: deps.revocations,
      hosts: new UpstreamHosts(deps.prisma, deps.changes),
      ca: forwardProxyCa,
      auditLog: deps.auditLog,
      log: app.log.child({ component: "forward-proxy" }),
    },
    { ...config.forwardProxy, headersTimeoutMs: config.headersTimeoutMs, requestTimeoutMs: config.requestTimeoutMs },
  );
}
