import type { FastifyBaseLogger } from "fastify";
import type { PrismaClient } from "@prisma/client";
import type { Database, Subscription } from "../db/database.js";
import { forbidden, unauthenticated, unavailable } from "../http/errors.js";
import type { AgentToken } from "../tokens/claims.js";
import { runPeriodically } from "../util/periodic.js";
import { Freshness } from "./freshness.js";
import { parseNotification, pingPayloadOf, recordOf, REVOCATION_CHANNEL } from "./records.js";
import { RevocationState, type RevocationRecord } from "./state.js";

export type RevocationServiceOptions = {
  /** Full reload interval: the safety net behind notifications. */
  resyncMs: number;
  /** Older than this, the state is not trusted: proxied calls fail with 503. */
  maxStalenessMs: number;
  /** Identifies this replica's pings. */
  replicaId: string;
  now?: () => number;
};

/** Every revocation in force at `now`, read from the database: what a full load holds. */
export async function readRevocationState(prisma: Pick<PrismaClient, "revocation">, now: Date): Promise<RevocationState> {
  const rows = await prisma.revocation.findMany({
    // Lifted kill switches and jti revocations of expired tokens are forgotten.
    where: { liftedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
    select: { id: true, selector: true, value: true, createdAt: true, expiresAt: true },
  });
  return RevocationState.from(rows.map((row) => recordOf({ ...row, lifted: false })));
}

/**
 * This replica's revocation state, checked on every proxied call without touching the database.
 *
 * Loaded in full at start; kept current by LISTEN on the revocation channel, where a trigger announces
 * every Revocation insert and update (migration 0002); reloaded in full every `resyncMs` as a safety net.
 * Currency is proven, not assumed (see Freshness): the replica pings itself through the channel several
 * times per staleness window. If the notification connection is lost it is re-established and the state
 * reloaded; until then, once the last proof is older than `maxStalenessMs`, every check fails with 503.
 */
export class RevocationService {
  #state = new RevocationState();
  readonly #freshness = new Freshness();
  /** Changes received while a full load runs, replayed onto its result (which may predate them). */
  #receivedDuringLoad: RevocationRecord[] | null = null;
  #loads: Promise<void> = Promise.resolve();
  #subscription: Subscription | null = null;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #recovering: Promise<void> = Promise.resolve();
  #tasks: { stop(): Promise<void> }[] = [];
  #stopped = false;
  /** Set by start(); nothing logs before. */
  #log!: FastifyBaseLogger;
  /** How often to ping and to retry a lost connection: several times per staleness window. */
  readonly #heartbeatMs: number;

  constructor(
    private readonly db: Database,
    private readonly options: RevocationServiceOptions,
  ) {
    this.#heartbeatMs = Math.max(25, Math.min(1000, Math.floor(options.maxStalenessMs / 4)));
  }

  #now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Subscribes and loads; throws if either fails, so a broker never starts without its revocations. */
  async start(log: FastifyBaseLogger): Promise<void> {
    this.#log = log;
    try {
      await this.#listen();
      await this.load();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.#tasks = [
      runPeriodically(() => this.#resync(), this.options.resyncMs),
      runPeriodically(() => this.#heartbeat(), this.#heartbeatMs),
    ];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    await Promise.all(this.#tasks.map((t) => t.stop()));
    await this.#recovering;
    await this.#subscription?.close();
    await this.#loads;
  }

  /** A full reload from the database; loads run one at a time. */
  load(): Promise<void> {
    const run = this.#loads.then(() => this.#loadOnce());
    this.#loads = run.catch(() => {});
    return run;
  }

  async #loadOnce(): Promise<void> {
    const epoch = this.#freshness.epoch;
    const startedAt = this.#now();
    this.#receivedDuringLoad = [];
    try {
      const state = await readRevocationState(this.db.prisma, new Date(startedAt));
      for (const record of this.#receivedDuringLoad) state.add(record);
      this.#state = state;
      this.#freshness.loaded(startedAt, epoch);
    } finally {
      this.#receivedDuringLoad = null;
    }
  }

  async #resync(): Promise<void> {
    await this.load().catch((err: unknown) => this.#log.warn({ err }, "revocation resync failed"));
  }

  async #heartbeat(): Promise<void> {
    this.#state.forgetExpired(this.#now());
    if (!this.#subscription) return;
    const payload = pingPayloadOf(this.db.schema, this.options.replicaId, this.#now());
    await this.db.notify(REVOCATION_CHANNEL, payload).catch((err: unknown) => this.#log.warn({ err }, "revocation ping failed"));
  }

  async #listen(): Promise<void> {
    this.#subscription = await this.db.listen(REVOCATION_CHANNEL, this.#onNotification, this.#onLost);
    this.#freshness.listening();
  }

  readonly #onNotification = (payload: string) => {
    const n = parseNotification(payload, this.db.schema);
    if (n.type === "change") this.applyCommitted(n.record);
    else if (n.type === "ping" && n.replica === this.options.replicaId) this.#freshness.pingEchoed(n.sentAt);
    else if (n.type === "unreadable") {
      this.#log.error("unreadable revocation notification; reloading");
      void this.#resync();
    }
  };

  readonly #onLost = (err: Error) => {
    this.#subscription = null;
    this.#freshness.lost();
    this.#log.warn({ err }, "revocation notifications lost; reconnecting");
    this.#scheduleRecovery();
  };

  #scheduleRecovery(): void {
    if (this.#stopped) return;
    this.#reconnectTimer = setTimeout(() => (this.#recovering = this.#recover()), this.#heartbeatMs);
    this.#reconnectTimer.unref();
  }

  /** Re-subscribes, then reloads (what was announced meanwhile was not heard); retries until both work. */
  async #recover(): Promise<void> {
    try {
      if (!this.#subscription) await this.#listen();
      await this.load();
      this.#log.info("revocation notifications restored");
    } catch (err) {
      this.#log.warn({ err }, "revocation notifications still down");
      this.#scheduleRecovery();
    }
  }

  /** Applies a committed revocation: announced by another replica, or just made on this one. */
  applyCommitted(record: RevocationRecord): void {
    this.#state.add(record);
    this.#receivedDuringLoad?.push(record);
  }

  isCurrent(): boolean {
    return this.#freshness.isCurrent(this.#now(), this.options.maxStalenessMs);
  }

  #assertCurrent(): void {
    if (!this.isCurrent()) throw unavailable("revocation_state_stale", "revocation state is not current; refusing to forward");
  }

  /** Throws 401 for a revoked token, 403 while the kill switch is engaged, 503 when the state is not current. */
  assertNotRevoked(token: AgentToken): void {
    this.#assertCurrent();
    if (this.#state.killSwitchEngaged) throw forbidden("kill switch engaged: every agent token is frozen", "kill_switch_engaged");
    const reason = this.#state.reasonRevoked(token);
    if (reason) throw unauthenticated("token_revoked", reason);
  }

  /** The environment selector, checked once the proxy knows the upstream's environment. */
  assertEnvironmentNotRevoked(token: AgentToken, environment: string): void {
    this.#assertCurrent();
    const reason = this.#state.reasonEnvironmentRevoked(environment, token);
    if (reason) throw unauthenticated("token_revoked", reason);
  }
}

// Writers (grants, agents, tokens) import the revocation write from here, beside the state it feeds.
export { recordRevocation, type RevocationTarget } from "./revoke.js";
