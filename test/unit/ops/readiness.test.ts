import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import type { PrismaClient } from "@prisma/client";
import { registerErrorHandling } from "../../../src/http/error-handler.js";
import { Metrics } from "../../../src/ops/metrics.js";
import { opsRoutes, type OpsDeps } from "../../../src/ops/routes.js";

/** /readyz with each dependency healthy unless told otherwise. */
async function readiness(faults: { database?: "down" | "hangs"; stale?: boolean; noSigningKey?: boolean; auditBacklogFull?: boolean; spoolRefused?: boolean }) {
  const app = Fastify();
  // Told the database is unreachable, the audit log refuses calls (src/audit/log.ts), as this stand-in does.
  let auditLogToldUnreachable = false;
  registerErrorHandling(app);
  const queryRaw = () =>
    faults.database === "down" ? Promise.reject(new Error("connection refused"))
    : faults.database === "hangs" ? new Promise(() => {})
    : Promise.resolve([{ "?column?": 1 }]);
  const deps = {
    prisma: { $queryRaw: queryRaw } as unknown as PrismaClient,
    revocations: { isCurrent: () => !faults.stale },
    signingKeys: {
      current: () => {
        if (faults.noSigningKey) throw new Error("signing keys not loaded");
        return {};
      },
    },
    metrics: new Metrics(),
    auditLog: {
      admit: () => !faults.auditBacklogFull && !auditLogToldUnreachable,
      databaseUnreachable: () => (auditLogToldUnreachable = true),
      spoolWritable: () => !faults.spoolRefused,
    },
  } as unknown as OpsDeps;
  await app.register(opsRoutes, deps);
  const res = await app.inject({ method: "GET", url: "/readyz" });
  await app.close();
  return { status: res.statusCode, body: res.json() };
}

describe("/readyz", () => {
  it("is 200 when the database answers, the revocation state is current and a signing key is loaded", async () => {
    expect(await readiness({})).toEqual({ status: 200, body: { status: "ready", checks: { database: true, revocationState: true, signingKey: true, auditLog: true, auditSpool: true } } });
  });

  it.each([
    // The failed check is passed on: the proxy refuses calls too, so the balancer's view and the calls agree.
    [{ database: "down" as const }, { database: false, revocationState: true, signingKey: true, auditLog: false, auditSpool: true }],
    [{ stale: true }, { database: true, revocationState: false, signingKey: true, auditLog: true, auditSpool: true }],
    [{ noSigningKey: true }, { database: true, revocationState: true, signingKey: false, auditLog: true, auditSpool: true }],
    // Calls are refused while too many events of answered calls wait for the database (src/audit/log.ts).
    [{ auditBacklogFull: true }, { database: true, revocationState: true, signingKey: true, auditLog: false, auditSpool: true }],
    // Every call is refused while the disk refuses the spool's writes: the balancer should stop sending them.
    [{ spoolRefused: true }, { database: true, revocationState: true, signingKey: true, auditLog: true, auditSpool: false }],
  ])("is 503 naming what failed: %o", async (faults, checks) => {
    expect(await readiness(faults)).toEqual({ status: 503, body: { error: { code: "not_ready", message: "not ready", details: checks } } });
  });

  it("does not wait on a database that does not answer", async () => {
    const started = Date.now();
    const { status, body } = await readiness({ database: "hangs" });
    expect(status).toBe(503);
    expect(body.error.details.database).toBe(false);
    expect(body.error.details.auditLog).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
