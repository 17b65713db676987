import type { PrismaClient } from "@prisma/client";
import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";

/** The upstream label of a proxied call whose upstream was never resolved: callers must not pick label values. */
export const UNRESOLVED_UPSTREAM = "-";

/**
 * This replica's Prometheus metrics, served at /metrics (src/ops/routes.ts). Each broker has its own
 * registry, so several brokers in one process (the tests) never mix their counts. Counters are per
 * replica: sum them across replicas.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly #proxyCalls = new Counter({
    name: "keyward_proxy_requests_total",
    help: "Proxied calls by upstream (- if not resolved), decision and response status.",
    labelNames: ["upstream", "decision", "status"] as const,
    registers: [this.registry],
  });
  readonly #proxyDuration = new Histogram({
    name: "keyward_proxy_request_duration_seconds",
    help: "Time from a proxied call's arrival to the end of its response, upstream time included.",
    labelNames: ["upstream", "decision"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly #tokensIssued = new Counter({
    name: "keyward_tokens_issued_total",
    help: "Agent tokens issued, directly, by token exchange, or on collecting an approval.",
    registers: [this.registry],
  });
  readonly #revocations = new Counter({
    name: "keyward_revocations_total",
    help: "Revocations recorded on this replica, by selector (jti, agent, grant, …, kill_switch).",
    labelNames: ["selector"] as const,
    registers: [this.registry],
  });
  readonly #auditWrites = new Histogram({
    name: "keyward_audit_write_duration_seconds",
    help: "Time to append one audit event (chain lock included), by event kind.",
    labelNames: ["kind"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "keyward_" });
  }

  proxyCall(upstream: string, decision: "allow" | "deny", status: number, seconds: number): void {
    this.#proxyCalls.inc({ upstream, decision, status: String(status) });
    this.#proxyDuration.observe({ upstream, decision }, seconds);
  }

  /** Every audit event is written through here (see observeAuditWrites): it is what marks issuance and revocation. */
  auditWritten(event: { kind: string; details?: unknown }, seconds: number): void {
    this.#auditWrites.observe({ kind: event.kind }, seconds);
    if (event.kind === "token.issued") this.#tokensIssued.inc();
    if (event.kind === "kill_switch.engaged") this.#revocations.inc({ selector: "kill_switch" });
    if (event.kind === "revocation.created") {
      const selector = (event.details as { selector?: unknown } | undefined)?.selector;
      this.#revocations.inc({ selector: typeof selector === "string" ? selector : "unknown" });
    }
  }
}

/**
 * The same client, timing and counting every audit event it writes. Audit events are written in many
 * places (src/audit/audit.ts appendAudit), always as `auditEvent.create`, in and out of transactions;
 * observing that one query covers them all. The exception is the proxy's own events, written in batches
 * of raw SQL (src/audit/batch.ts), which report each event to `auditWritten` themselves. An event whose
 * transaction later rolls back is still counted: rare, and the audit log, not the metrics, is the record.
 */
export function observeAuditWrites(prisma: PrismaClient, metrics: Metrics): PrismaClient {
  const observed = prisma.$extends({
    query: {
      auditEvent: {
        async create({ args, query }) {
          const startedAt = performance.now();
          const created = await query(args);
          metrics.auditWritten(args.data as { kind: string; details?: unknown }, (performance.now() - startedAt) / 1000);
          return created;
        },
      },
    },
  });
  // A query extension changes no types: the extended client is used exactly as the plain one.
  return observed as unknown as PrismaClient;
}
