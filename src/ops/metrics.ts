import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { CallCounter, CallHistogram } from "./call-metrics.js";

/** What the metrics read of an audit event. */
type AuditedCall = {
  kind: string;
  details?: unknown;
  upstream?: string;
  environment?: string;
  decision?: string;
  status?: number;
  latencyMs?: number;
};

/** The upstream label of a proxied call whose upstream was never resolved: callers must not pick label values. */
export const UNRESOLVED_UPSTREAM = "-";

/**
 * This replica's Prometheus metrics, served at /metrics (src/ops/routes.ts). Each broker has its own
 * registry, so several brokers in one process (the tests) never mix their counts. Counters are per
 * replica: sum them across replicas.
 */
export class Metrics {
  readonly registry = new Registry();

  // What every call's events report: counted without prom-client's per-observation cost (src/ops/call-metrics.ts).
  readonly #proxyCalls = new CallCounter(
    "keyward_proxy_requests_total",
    "Proxied calls by upstream (- if not resolved), decision and response status.",
    ["upstream", "decision", "status"],
    this.registry,
  );
  readonly #proxyDuration = new CallHistogram(
    "keyward_proxy_request_duration_seconds",
    "Time from a proxied call's arrival to its answer (the upstream's response headers), upstream time included.",
    ["upstream", "decision"],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    this.registry,
  );
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
  readonly #auditWrites = new CallHistogram(
    "keyward_audit_write_duration_seconds",
    "Time to append one audit event (chain lock included), by event kind.",
    ["kind"],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    this.registry,
  );

  readonly #auditSpoolSyncs = new Histogram({
    name: "keyward_audit_spool_sync_duration_seconds",
    help: "Time of each group fdatasync of the audit spool: what every proxied call waits for, once or twice.",
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  readonly #auditSetAside = new Counter({
    name: "keyward_audit_set_aside_total",
    help: "Audit events the database refused and that were set aside (GET /v1/audit/set-aside), by event kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  #readAuditBacklog: () => number = () => 0;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "keyward_" });
    const readBacklog = () => this.#readAuditBacklog();
    // Read at each scrape from the audit log (auditBacklog), not counted per event.
    new Gauge({
      name: "keyward_audit_backlog_events",
      help: "Audit events of calls already answered that wait in memory for the database to take them.",
      registers: [this.registry],
      collect() {
        this.set(readBacklog());
      },
    });
  }

  /** Read at each scrape. */
  auditBacklog(read: () => number): void {
    this.#readAuditBacklog = read;
  }

  /** One group of the audit spool made durable (src/audit/spool.ts). */
  auditSpoolSynced(seconds: number): void {
    this.#auditSpoolSyncs.observe(seconds);
  }

  auditSetAside(event: { kind: string }): void {
    this.#auditSetAside.inc({ kind: event.kind });
  }

  /** A revocation committed on this replica (src/revocation/service.ts, `committed`). */
  revoked(selector: string): void {
    this.#revocations.inc({ selector });
  }

  /** Each event the audit pipeline (src/audit/log.ts) writes: the proxy's calls and token issuance are read from them. */
  auditWritten(event: AuditedCall, seconds: number): void {
    this.#auditWrites.observe([event.kind], seconds);
    // A proxied call's last event is its record: the call metrics are read from it, not counted apart.
    if (event.kind === "proxy.response" || (event.kind === "proxy" && event.decision === "deny")) {
      // The upstream is a label only once it resolved (its environment is known): callers must not mint label values.
      const upstream = event.environment === undefined ? UNRESOLVED_UPSTREAM : (event.upstream ?? UNRESOLVED_UPSTREAM);
      const decision = event.decision === "allow" ? "allow" : "deny";
      this.#proxyCalls.inc([upstream, decision, String(event.status ?? 0)]);
      if (event.latencyMs !== undefined) this.#proxyDuration.observe([upstream, decision], event.latencyMs / 1000);
    }
    if (event.kind === "token.issued") this.#tokensIssued.inc();
  }
}
