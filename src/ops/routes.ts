import type { AuditLog } from "../audit/log.js";
import { afterOwnEvents } from "../audit/routes.js";
import type { FastifyInstance } from "fastify";
import type { PrismaClient } from "@prisma/client";
import { installAdminAuth } from "../admin/auth.js";
import { KeywardError } from "../http/errors.js";
import type { RevocationService } from "../revocation/service.js";
import type { SigningKeys } from "../signing-keys/signing-keys.js";
import type { Metrics } from "./metrics.js";

export type OpsDeps = {
  prisma: PrismaClient;
  revocations: RevocationService;
  signingKeys: SigningKeys;
  metrics: Metrics;
  auditLog: Pick<AuditLog, "admit" | "flush" | "databaseUnreachable" | "spoolWritable">;
};

/** Longer than this, the database counts as unreachable: a load balancer's check must answer promptly. */
const DATABASE_CHECK_TIMEOUT_MS = 2_000;

async function databaseReachable(prisma: PrismaClient): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), DATABASE_CHECK_TIMEOUT_MS)));
  const query = prisma.$queryRaw`SELECT 1`.then(() => true, () => false);
  try {
    return await Promise.race([query, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The check in flight, shared by every readiness call that arrives meanwhile: `/readyz` answers anyone,
 * and a burst of calls each making its own round trip would queue behind the pool until the last ones
 * passed the limit and found a database that answers "unreachable", failing every proxied call (FLT-55).
 */
function sharedCheck(check: () => Promise<boolean>): () => Promise<boolean> {
  let inFlight: Promise<boolean> | null = null;
  return () => (inFlight ??= check().finally(() => (inFlight = null)));
}

function signingKeyLoaded(signingKeys: SigningKeys): boolean {
  try {
    signingKeys.current();
    return true;
  } catch {
    return false;
  }
}

/**
 * `/healthz` (the process is up), `/readyz` (this replica can serve: point load-balancer checks here)
 * and `/metrics` (Prometheus; an admin key allowed to read_audit, e.g. an `auditor` key, so counts of
 * calls per upstream are no more public than the audit log they summarise).
 */
export async function opsRoutes(app: FastifyInstance, deps: OpsDeps): Promise<void> {
  app.get("/healthz", async () => ({ status: "ok" }));

  // A replica that cannot prove its revocation state current refuses every proxied call, and one without
  // its database or signing key cannot issue or check anything: each should leave the rotation until it can.
  const databaseAnswers = sharedCheck(() => databaseReachable(deps.prisma));
  app.get("/readyz", async () => {
    const database = await databaseAnswers();
    // What this check found, the proxy acts on too: it refuses calls until the database answers again.
    if (!database) deps.auditLog.databaseUnreachable(new Error("the readiness check could not reach the database"));
    const checks = {
      database,
      revocationState: deps.revocations.isCurrent(),
      signingKey: signingKeyLoaded(deps.signingKeys),
      // Too many events of answered calls wait for the database: new calls are refused (src/audit/log.ts).
      auditLog: deps.auditLog.admit(),
      // A disk that refuses the spool's writes fails every call (no call is forwarded before its event is on it).
      auditSpool: deps.auditLog.spoolWritable(),
    };
    if (!Object.values(checks).every(Boolean)) throw new KeywardError(503, "not_ready", "not ready", { details: checks });
    return { status: "ready", checks };
  });

  await app.register(async (scope) => {
    installAdminAuth(scope, deps.prisma);
    // The proxy's counts come from its audit events as they reach the database: this broker's first.
    scope.get("/metrics", { config: { permission: "read_audit" }, preHandler: afterOwnEvents(deps.auditLog) }, async (_request, reply) =>
      reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
    );
  });
}
