import { randomUUID } from "node:crypto";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { DestinationStream } from "pino";
import { bootstrapAdminKey } from "./admin/keys.js";
import { Agents } from "./agents/agents.js";
import { join } from "node:path";
import { AuditLog, auditChainId } from "./audit/log.js";
import { AuditSpool } from "./audit/spool.js";
import { deriveCheckpointKey, type CheckpointKeys } from "./audit/chain.js";
import { reanchorCheckpoint, scheduleAuditRetention } from "./audit/retention.js";
import { startAuditSink } from "./audit/sink.js";
import { ClientAuthenticator } from "./agents/client-auth.js";
import type { Config } from "./config/config.js";
import { databaseOptionsOf, openDatabase, type Database } from "./db/database.js";
import { migrate } from "./db/migrate.js";
import { Metrics } from "./ops/metrics.js";
import { ApprovalWebhook } from "./approvals/webhook.js";
import { Approvals } from "./approvals/approvals.js";
import { IssuanceGate } from "./approvals/gate.js";
import { BudgetService } from "./budgets/budgets.js";
import { Environments } from "./environments/environments.js";
import { Grants } from "./grants/grants.js";
import { createUpstreamDispatcher } from "./proxy/forward.js";
import { OutcomesOwed } from "./proxy/outcomes-owed.js";
import { tokenDeadlineMs } from "./proxy/upstream-timeouts.js";
import { ForwardProxyCa, startForwardProxy, UpstreamHosts, type ForwardProxy } from "./forward-proxy/index.js";
import { ChangeFeed } from "./change-feed/feed.js";
import { RevocationService } from "./revocation/service.js";
import { buildServer, createLogger } from "./server.js";
import { resolveDeploymentIssuer } from "./tokens/deployment-issuer.js";
import { SigningKeys } from "./signing-keys/signing-keys.js";
import { Tokens } from "./tokens/tokens.js";
import { verifyAgentToken, type TokenVerifier } from "./tokens/verify.js";
import { rememberVerifiedTokens } from "./tokens/verified-tokens.js";
import { RETIRED_PRUNE_INTERVAL_MS } from "./upstreams/retired-credentials.js";
import { Upstreams } from "./upstreams/upstreams.js";
import { runPeriodically } from "./util/periodic.js";
import { loadOrCreateLocalMasterKey, parseMasterKey, Vault } from "./vault/vault.js";

export type Keyward = {
  app: FastifyInstance;
  db: Database;
  /** Where a generated master key was written, to warn about it. */
  generatedMasterKeyPath: string | null;
  /** Audit events of answered calls waiting for the database (src/audit/log.ts). */
  auditBacklog(): number;
  /** Transparent mode's listener, when KEYWARD_FORWARD_PROXY_PORT is set. */
  forwardProxy: ForwardProxy | null;
  close(): Promise<void>;
};

export type KeywardOptions = {
  logStream?: DestinationStream;
  /**
   * The embedded PostgreSQL server died under the broker. Every query fails from then on, so every call is
   * refused (fail closed); main.ts exits non-zero for the supervisor to restart the broker.
   */
  onDatabaseServerExit?: (description: string) => void;
  /**
   * Aborted by a stop (SIGTERM, SIGINT) before createKeyward returns: the embedded PostgreSQL, which runs in
   * its own process group and would outlive the broker, is stopped at once; what was being set up on it
   * fails, and createKeyward rejects after closing what it opened.
   */
  startupAborted?: AbortSignal;
  /**
   * The first start of an empty database without KEYWARD_ADMIN_KEY generated the admin key: told at once,
   * as soon as its hash is committed, since no later start makes another; a start that failed after it
   * would otherwise leave a database whose only admin key nobody has seen.
   */
  onAdminKeyGenerated?: (key: string) => void;
};

/** How long a stop waits, once no connection is left, for the outcomes of the calls it cut (a few ticks, normally). */
const OUTCOMES_AFTER_CLOSE_MS = 5_000;

/** Opens the database, migrates it, loads keys and revocation state, and builds the server. */
export async function createKeyward(config: Config, options: KeywardOptions = {}): Promise<Keyward> {
  let generatedMasterKeyPath: string | null = null;
  let masterKey: Buffer;
  if (config.masterKey) {
    masterKey = parseMasterKey(config.masterKey);
  } else {
    const local = loadOrCreateLocalMasterKey(config.dataDir);
    masterKey = local.key;
    if (local.generated) generatedMasterKeyPath = local.path;
  }
  // During a master-key rotation the previous key still decrypts (docs/secrets.md, "Rotating the master key").
  const vault = new Vault(masterKey, config.masterKeyPrevious ? parseMasterKey(config.masterKeyPrevious) : undefined);

  const log = createLogger(config, options.logStream);
  const onServerExit =
    options.onDatabaseServerExit ?? ((description: string) => log.fatal(`${description}: every call is refused until the broker restarts`));
  const where = databaseOptionsOf(config);
  const db = await openDatabase(where.kind === "embedded" ? { ...where, onServerExit, stopOn: options.startupAborted } : where);
  try {
    await migrate(db);
    const metrics = new Metrics();
    const { prisma } = db;
    const generatedAdminKey = await bootstrapAdminKey(prisma, config.bootstrapAdminKey);
    if (generatedAdminKey) options.onAdminKeyGenerated?.(generatedAdminKey);
    const signingKeys = await SigningKeys.open(prisma, vault, {
      ...config.signingKeys,
      leewaySeconds: config.tokens.leewaySeconds,
      onError: (err) => log.warn({ err }, "signing key maintenance failed"),
    });

    // Names this process in the change feed's pings and on the audit webhook's lease.
    const replicaId = randomUUID();
    // What the in-memory state (revocations, cached grants, upstreams, environments) hears changes on.
    const changes = new ChangeFeed(db, {
      resyncMs: config.revocationResyncMs,
      maxStalenessMs: config.revocationMaxStalenessMs,
      replicaId,
      log,
    });
    // A token verifies this long past its expiry (the clock-skew leeway): its revocation and its budget
    // counters must last as long.
    const verifiesAfterExpiryMs = config.tokens.leewaySeconds * 1000;
    const revocations = new RevocationService(db.prisma, changes, {
      resyncMs: config.revocationResyncMs,
      keepAfterExpiryMs: verifiesAfterExpiryMs,
      onCommitted: (record) => metrics.revoked(record.selector),
    });
    const auditCheckpointKeys: CheckpointKeys = [
      deriveCheckpointKey(masterKey),
      ...(config.masterKeyPrevious ? [deriveCheckpointKey(parseMasterKey(config.masterKeyPrevious))] : []),
    ];
    if (auditCheckpointKeys.length > 1) await reanchorCheckpoint(prisma, auditCheckpointKeys, "master-key-rotation");

    // The proxy's and token issuance's events, in group commits (src/audit/log.ts).
    const onAuditHealth = auditHealthReporter(log);
    const { spool, recovered, foreign } = AuditSpool.open(join(config.dataDir, "audit-spool"), await auditChainId(db), (seconds) =>
      metrics.auditSpoolSynced(seconds),
    );
    for (const dir of foreign) {
      log.warn(`audit spool ${dir} holds events of another database's audit chain (this data dir was used with another DATABASE_URL or schema): left in place for a broker on that database to ship`);
    }
    const auditLog = new AuditLog(db, spool, recovered, {
      onWritten: (event, seconds) => metrics.auditWritten(event, seconds),
      onSetAside: (event, reason) => {
        metrics.auditSetAside(event);
        onAuditHealth(new Error(`audit event ${event.eventId} (${event.kind}) refused by the database and set aside: ${reason}`));
      },
      onHealth: onAuditHealth,
    });
    metrics.auditBacklog(() => auditLog.backlog);

    // One issuer per deployment, recorded by the first broker, so a token from any replica is valid on all.
    const issuer = await resolveDeploymentIssuer(prisma, { url: config.issuer, configured: config.issuerConfigured });
    const claims = { issuer, audience: config.audience };
    const grants = new Grants(prisma, changes, revocations);
    const agents = new Agents(prisma, changes, revocations);
    const dispatcher = createUpstreamDispatcher(config.upstreamTimeouts);
    const upstreams = new Upstreams(prisma, vault, dispatcher, tokenDeadlineMs(config.upstreamTimeouts), changes, (ca) => createUpstreamDispatcher(config.upstreamTimeouts, ca));
    // Policy depth: environments, break-glass approvals (checked at issuance by the gate), budgets.
    const onPolicyError = (err: unknown) => log.warn({ err }, "policy background work failed");
    const environments = new Environments(prisma, changes);
    const approvalWebhook = config.approvals.webhook ? new ApprovalWebhook(config.approvals.webhook, prisma, onPolicyError) : null;
    const approvals = new Approvals(prisma, { ttlSeconds: config.approvals.ttlSeconds, notifier: approvalWebhook });
    const budgets = new BudgetService(prisma, verifiesAfterExpiryMs);
    const gate = new IssuanceGate(prisma, upstreams, environments, approvals);
    const tokens = new Tokens(prisma, grants, () => signingKeys.current(), claims, config.tokens, gate, auditLog, agents);
    const verifyToken: TokenVerifier = rememberVerifiedTokens(
      (token) => verifyAgentToken(token, (kid) => signingKeys.publicKey(kid), { ...claims, ...config.tokens }),
      { maxEntries: 10_000, leewaySeconds: config.tokens.leewaySeconds, keyKnown: (kid) => signingKeys.current().publicKeys.has(kid) },
    );
    const clientAuth = new ClientAuthenticator(prisma, agents, {
      issuer,
      leewaySeconds: config.tokens.leewaySeconds,
    });

    // Transparent mode, when KEYWARD_FORWARD_PROXY_PORT is set: its CA, its routes, its listener (below).
    const upstreamHosts = config.forwardProxy ? new UpstreamHosts(prisma, changes) : null;
    const forwardProxyCa = upstreamHosts ? new ForwardProxyCa(prisma, vault, upstreamHosts, changes) : null;

    const outcomesOwed = new OutcomesOwed();
    const app = await buildServer(
      config,
      {
        prisma,
        upstreams,
        agents,
        grants,
        revocations,
        tokens,
        signingKeys,
        verifyToken,
        clientAuth,
        dispatcher,
        claims,
        maxBodyBytes: config.proxyMaxBodyBytes,
        clientSecretOverlapSeconds: config.clientSecretOverlapSeconds,
        auditCheckpointKeys,
        environments,
        approvals,
        budgets,
        inspectMaxBytes: Math.min(config.policyInspectMaxBytes, config.proxyMaxBodyBytes),
        outcomesOwed,
        metrics,
        auditLog,
        forwardProxyCa,
      },
      log,
    );
    const background: { stop(): Promise<void> }[] = [];
    let forwardProxy: ForwardProxy | null = null;
    background.push({
      async stop() {
        const { unshipped, unspooled } = await auditLog.close();
        if (unshipped > 0) log.warn(`${unshipped} audit events not yet in the database stay in the spool; the next broker to start on this data dir ships them`);
        // Neither the disk nor the database took them: the log is where they survive (audit rows hold no secrets).
        for (const event of unspooled) log.error({ auditEvent: event }, "audit event of an answered call not written before stopping");
      },
    });
    try {
      await changes.start();
      background.push(changes);
      budgets.start(600_000, onPolicyError);
      background.push(budgets);
      if (approvalWebhook) background.push({ stop: () => approvalWebhook.drain() });
      if (config.auditWebhook) {
        const sink = { ...config.auditWebhook, owner: replicaId, intervalMs: 1_000, batchSize: 500, timeoutMs: 10_000 };
        background.push(startAuditSink(prisma, sink, log));
      }
      // The stored secrets of replaced upstream credentials are read only while their overlap lasts; past it they are deleted.
      const pruneRetired = () => upstreams.pruneRetired().then(() => {}, (err: unknown) => log.warn({ err }, "pruning replaced upstream credentials failed"));
      background.push(runPeriodically(pruneRetired, RETIRED_PRUNE_INTERVAL_MS, { immediately: true }));
      if (config.auditRetentionDays) {
        const retention = { retentionDays: config.auditRetentionDays, intervalMs: 3_600_000, keepUnshipped: config.auditWebhook !== undefined };
        background.push(scheduleAuditRetention(prisma, auditCheckpointKeys, retention, log));
      }
      if (forwardProxyCa && upstreamHosts && config.forwardProxy) {
        const listener = { ...config.forwardProxy, headersTimeoutMs: config.headersTimeoutMs, requestTimeoutMs: config.requestTimeoutMs };
        forwardProxy = await startForwardProxy(app, listener, { prisma, forwardProxyCa, hosts: upstreamHosts, revocations, verifyToken, auditLog, grants, agents });
      }
    } catch (err) {
      await app.close();
      await Promise.all(background.map((b) => b.stop()));
      throw err;
    }
    signingKeys.start();

    return {
      app,
      db,
      generatedMasterKeyPath,
      forwardProxy,
      auditBacklog: () => auditLog.backlog,
      async close() {
        signingKeys.stop();
        // A call that never ends (an event stream the agent follows) would hold the stop until the supervisor's
        // SIGKILL, which loses its outcome event and leaves the embedded database to be stopped by the next
        // start: past the deadline, the calls still running are cut (each recorded as an incomplete response).
        let pastDeadline = false;
        const cutRemaining = () => {
          pastDeadline = true;
          forwardProxy?.cutRemaining();
          app.server.closeAllConnections();
        };
        const deadline = setTimeout(cutRemaining, config.shutdownTimeoutMs);
        try {
          await forwardProxy?.close();
          const closing = app.close();
          // The forward proxy's calls took until the deadline: the main port's calls are cut now too.
          if (pastDeadline) app.server.closeAllConnections();
          await closing;
        } finally {
          clearTimeout(deadline);
        }
        // The calls cut record their outcomes just after their connections closed: kept before the audit log closes.
        if (!(await outcomesOwed.allKept(OUTCOMES_AFTER_CLOSE_MS))) log.error("calls cut by the stop did not record their outcomes in time");
        await Promise.all(background.map((b) => b.stop()));
        await dispatcher.close();
        await db.close();
      },
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}

/** Logs when audit writes start failing and when they work again, once each, not on every retry. */
function auditHealthReporter(log: FastifyBaseLogger): (err: unknown | null) => void {
  let failing = false;
  return (err) => {
    if (err && !failing) log.error({ err }, "audit events are not reaching the database; retrying");
    if (!err && failing) log.info("audit events reach the database again");
    failing = err !== null;
  };
}
