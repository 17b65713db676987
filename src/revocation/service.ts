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
  /** Incremental sync interval (and refresh of the followers): the safety net behind notifications. */
  resyncMs: number;
  /** Older than this, the state is not trusted: proxied calls fail with 503. */
  maxStalenessMs: number;
  /** Identifies this replica's pings. */
  replicaId: string;
  now?: () => number;
};

/**
 * Revocations in force at `now`, read from the database: every one (a full load), or only those created
 * after `createdAfter` (an incremental sync).
 */
async function readRevocations(prisma: Pick<PrismaClient, "revocation">, now: Date, createdAfter?: Date): Promise<RevocationRecord[]> {
  const rows = await prisma.revocation.findMany({
    // Lifted kill switches and jti revocations of expired tokens are forgotten.
    where: {
      liftedAt: null,
      OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
      ...(createdAfter && { createdAt: { gt: createdAfter } }),
    },
    select: { id: true, selector: true, value: true, createdAt: true, expiresAt: true },
  });
  return rows.map((row) => recordOf({ ...row, lifted: false }));
}

/** Every revocation in force at `now`, read from the database: what a full load holds. */
export async function readRevocationState(prisma: Pick<PrismaClient, "revocation">, now: Date): Promise<RevocationState> {
  return RevocationState.from(await readRevocations(prisma, now));
}

/**
 * An in-memory cache of other stored rows that rides on the revocation channel and its freshness proof
 * (see RevocationService.follow). The triggers of migration 0005 announce changes to its tables on the
 * same channel, in commit order with everything else, so the ping echo that proves the revocation state
 * current proves that every change announced before it has reached the cache too.
 */
export type ChannelFollower = {
  /** The table names its change notifications carry. */
  readonly tables: readonly string[];
  /** Row `key` of `table` changed (null: any row), announced or made on this replica: drop it, now. */
  changed(table: string, key: string | null): void;
  /** Nothing held can be vouched for any more (a new LISTEN has not heard what came before it). */
  clear(): void;
  /** The periodic safety net behind notifications: re-reads everything held. */
  refresh(): Promise<void>;
};

/**
 * How far back an incremental sync looks before the previous one started: a revocation is found by its
 * createdAt, which its writer sets before committing, and replica clocks differ a little.
 */
const SYNC_OVERLAP_MS = 30_000;
/** Full reloads, the last resort behind notifications and incremental syncs, run this rarely. */
const FULL_RELOAD_INTERVAL_MS = 300_000;
/** Followers re-read what they hold this often: a few statements per thousand rows held. */
const FOLLOWER_REFRESH_INTERVAL_MS = 30_000;

/**
 * This replica's revocation state, checked on every proxied call without touching the database.
 *
 * Loaded in full at start; kept current by LISTEN on the revocation channel, where a trigger announces
 * every Revocation insert and update (migration 0002). As a safety net, every `resyncMs` it reads the
 * revocations created since shortly before the previous sync, and reloads in full every few minutes.
 * Currency is proven, not assumed (see Freshness): the replica pings itself through the channel several
 * times per staleness window. If the notification connection is lost it is re-established and the state
 * reloaded; until then, once the last proof is older than `maxStalenessMs`, every check fails with 503.
 * Caches of other tables follow the same channel and proof (`follow`).
 */
export class RevocationService {
  #state = new RevocationState();
  readonly #freshness = new Freshness();
  /** Changes received while a load or sync runs, replayed after it (its snapshot may predate them). */
  #receivedDuringLoad: RevocationRecord[] | null = null;
  /** Full loads and incremental syncs, one at a time. */
  #loads: Promise<void> = Promise.resolve();
  #lastFullLoadStartedAt = -Infinity;
  #lastSyncStartedAt = -Infinity;
  #lastFollowerRefreshAt = -Infinity;
  readonly #followers: ChannelFollower[] = [];
  #subscription: Subscription | null = null;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #recovering: Promise<void> = Promise.resolve();
  #recoveryAttempts = 0;
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

  /**
   * Caches `follower` on this channel: its changes are applied as they are announced, and it is cleared
   * whenever the state is reloaded in full (which is what follows a new LISTEN).
   */
  follow(follower: ChannelFollower): void {
    this.#followers.push(follower);
  }

  /** A full reload from the database; loads and syncs run one at a time. */
  load(): Promise<void> {
    return this.#queue(() => this.#loadOnce());
  }

  #queue(task: () => Promise<void>): Promise<void> {
    const run = this.#loads.then(task);
    this.#loads = run.catch(() => {});
    return run;
  }

  async #loadOnce(): Promise<void> {
    const epoch = this.#freshness.epoch;
    const startedAt = this.#now();
    // What the followers hold may predate this LISTEN; what they read from now on does not.
    for (const follower of this.#followers) follower.clear();
    this.#receivedDuringLoad = [];
    try {
      const state = RevocationState.from(await readRevocations(this.db.prisma, new Date(startedAt)));
      for (const record of this.#receivedDuringLoad) state.add(record);
      this.#state = state;
      // The followers were cleared: as good as refreshed.
      this.#lastFullLoadStartedAt = this.#lastSyncStartedAt = this.#lastFollowerRefreshAt = startedAt;
      this.#freshness.loaded(startedAt, epoch);
    } finally {
      this.#receivedDuringLoad = null;
    }
  }

  /**
   * Applies the revocations created since shortly before the previous sync: a safety net behind
   * notifications, not a proof of currency (a row whose transaction stayed open longer than the overlap
   * is found by the next full reload instead). Kill-switch lifts are updates, not found here: a lost one
   * keeps the switch engaged, failing closed, until the next full reload.
   */
  async #syncOnce(): Promise<void> {
    const startedAt = this.#now();
    this.#receivedDuringLoad = [];
    try {
      const since = new Date(this.#lastSyncStartedAt - SYNC_OVERLAP_MS);
      for (const record of await readRevocations(this.db.prisma, new Date(startedAt), since)) this.#state.add(record);
      // A lift announced while the rows were read must win over the engaged row read before it.
      for (const record of this.#receivedDuringLoad) this.#state.add(record);
      this.#lastSyncStartedAt = startedAt;
    } finally {
      this.#receivedDuringLoad = null;
    }
  }

  async #resync(): Promise<void> {
    const now = this.#now();
    const full = now - this.#lastFullLoadStartedAt >= Math.max(FULL_RELOAD_INTERVAL_MS, this.options.resyncMs);
    try {
      await this.#queue(() => (full ? this.#loadOnce() : this.#syncOnce()));
      if (now - this.#lastFollowerRefreshAt >= Math.max(FOLLOWER_REFRESH_INTERVAL_MS, this.options.resyncMs)) {
        this.#lastFollowerRefreshAt = now;
        await Promise.all(this.#followers.map((f) => f.refresh()));
      }
    } catch (err) {
      this.#log.warn({ err }, "revocation resync failed");
    }
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
    else if (n.type === "row-change") this.rowChanged(n.table, n.key);
    else if (n.type === "ping" && n.replica === this.options.replicaId) this.#freshness.pingEchoed(n.sentAt);
    else if (n.type === "unreadable") {
      this.#log.error("unreadable revocation notification; reloading");
      void this.load().catch((err: unknown) => this.#log.warn({ err }, "revocation reload failed"));
    }
  };

  readonly #onLost = (err: Error) => {
    this.#subscription = null;
    this.#freshness.lost();
    this.#log.warn({ err }, "revocation notifications lost; reconnecting");
    this.#scheduleRecovery();
  };

  /**
   * Exponential backoff with jitter, from 50 ms up to the heartbeat: gentle on a database that is coming
   * back (or near max_connections), yet never more than a heartbeat between tries, so a replica serves
   * again within about a second of the database taking connections.
   */
  #scheduleRecovery(): void {
    if (this.#stopped) return;
    const delay = Math.min(this.#heartbeatMs, 50 * 2 ** this.#recoveryAttempts++) * (0.5 + Math.random() / 2);
    this.#reconnectTimer = setTimeout(() => (this.#recovering = this.#recover()), delay);
    this.#reconnectTimer.unref();
  }

  /** Re-subscribes, then reloads (what was announced meanwhile was not heard); retries until both work. */
  async #recover(): Promise<void> {
    try {
      if (!this.#subscription) await this.#listen();
      await this.load();
      this.#recoveryAttempts = 0;
      this.#log.info("revocation notifications restored");
    } catch (err) {
      this.#log.warn({ err }, "revocation notifications still down");
      this.#scheduleRecovery();
    }
  }

  /** A row of a followed table changed: announced by a trigger, or just committed on this replica. */
  rowChanged(table: string, key: string | null): void {
    for (const follower of this.#followers) if (follower.tables.includes(table)) follower.changed(table, key);
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
