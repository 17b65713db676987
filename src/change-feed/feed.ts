import { randomUUID } from "node:crypto";
import type { FastifyBaseLogger } from "fastify";
import type { Database, Subscription } from "../db/database.js";
import { runPeriodically } from "../util/periodic.js";
import { CHANGE_CHANNEL, parseNotification, pingPayloadOf, type Change, type RowChange } from "./changes.js";
import { Freshness } from "./freshness.js";
import { jittered } from "../util/jitter.js";

/**
 * State held in memory and kept current by the feed: the revocation state, the caches of stored rows.
 * Method syntax, so that a follower of some tables' changes is a follower of `Change`.
 */
export type ChangeFollower<C extends Change = Change> = {
  /** The tables whose changes it is given. */
  readonly tables: readonly C["table"][];
  /**
   * Applies a change announced on the channel or committed on this replica. Throws if it cannot (say, a
   * revocation of a kind this version does not know): the feed then vouches for nothing until every
   * follower has reloaded.
   */
  changed(change: C): void;
  /**
   * Replaces everything held with what is stored now. Run after every new LISTEN (what was committed
   * before it was never heard) and every few minutes, as the last resort behind the rest.
   */
  reload(): Promise<void>;
  /** How often `refresh` runs (at most as often as the feed's resync). */
  readonly refreshMs: number;
  /** The periodic safety net behind notifications: re-reads what is held, or what changed lately. */
  refresh(): Promise<void>;
};

export type ChangeFeedOptions = {
  /** How often the followers' refreshes are due (and the least time between two of them). */
  resyncMs: number;
  /** Older than this, nothing held may be vouched for: `isCurrent` is false. */
  maxStalenessMs: number;
  /** Identifies this replica's pings. */
  replicaId: string;
  log: FastifyBaseLogger;
  now?: () => number;
};

/**
 * How long a change's answer waits for the other replicas to apply it: one that has not by then is
 * failing its own freshness checks soon after.
 */
export const PROPAGATION_WAIT_MS = 1_000;

/** Full reloads, the last resort behind notifications and refreshes, run this rarely. */
const FULL_RELOAD_INTERVAL_MS = 300_000;

/**
 * This replica's subscription to the change channel (`LISTEN`, on a connection of its own: `db.listen`),
 * and the proof that what its followers hold is current.
 *
 * At start it listens, then has every follower load in full. Each change announced is passed to the
 * followers of its table; a change committed on this replica is passed on at once (`committedHere`), so
 * that the replica reads its own writes. Currency is proven, not assumed (see Freshness): the replica
 * pings itself through the channel several times per staleness window, and the echo proves that every
 * change committed before the ping has been applied. If the connection is lost it is re-established and
 * every follower reloaded; until then, once the last proof is older than `maxStalenessMs`, `isCurrent`
 * is false, and the followers fail closed (the revocation check refuses with 503, caches read the database).
 */
export class ChangeFeed {
  readonly #freshness = new Freshness();
  readonly #followers: ChangeFollower[] = [];
  readonly #lastRefreshAt = new Map<ChangeFollower, number>();
  #lastFullReloadAt = -Infinity;
  #subscription: Subscription | null = null;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #recovering: Promise<void> = Promise.resolve();
  #recoveryAttempts = 0;
  /** A recovery is scheduled or running: the only one. */
  #recoveryOwned = false;
  #tasks: { stop(): Promise<void> }[] = [];
  #stopped = false;
  /** How often to ping and to retry a lost connection: several times per staleness window. */
  readonly #heartbeatMs: number;
  /** Other replicas on this schema, by the time their last ping arrived: the ones a barrier waits for. */
  readonly #replicasSeen = new Map<string, number>();
  /** When this subscription began, or last brought back one of this replica's own pings. */
  #lastHeardAt = -Infinity;
  /** Barriers this replica raised, by id: the replicas that have not answered yet. */
  readonly #barriers = new Map<string, { waiting: Set<string>; done: () => void }>();

  constructor(
    private readonly db: Database,
    private readonly options: ChangeFeedOptions,
  ) {
    this.#heartbeatMs = Math.max(25, Math.min(1000, Math.floor(options.maxStalenessMs / 4)));
  }

  #now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Passes `follower` the changes of its tables from now on; followers added before `start` load with it. */
  follow<C extends Change>(follower: ChangeFollower<C>): void {
    this.#followers.push(follower as ChangeFollower);
    this.#lastRefreshAt.set(follower as ChangeFollower, this.#now());
  }

  /** Subscribes and loads; throws if either fails, so a broker never starts on state it cannot vouch for. */
  async start(): Promise<void> {
    try {
      await this.#listen();
      await this.reload();
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
  }

  /** Every follower reloads in full; once all have, the feed vouches for them again (for this LISTEN). */
  async reload(): Promise<void> {
    const epoch = this.#freshness.epoch;
    const startedAt = this.#now();
    await Promise.all(this.#followers.map((f) => f.reload()));
    this.#lastFullReloadAt = startedAt;
    for (const follower of this.#followers) this.#lastRefreshAt.set(follower, startedAt);
    this.#freshness.loaded(startedAt, epoch);
  }

  /** A change committed on this replica: applied before the caller answers, not when its echo arrives. */
  committedHere(change: RowChange): void {
    this.#deliver(change);
  }

  /**
   * A change committed on this replica, applied here at once and settled once every other live replica
   * has applied it too (the barrier, as for a revocation): the admin's answer comes when the next call
   * through any replica is judged by it, not a few milliseconds later.
   */
  async committedEverywhere(change: RowChange): Promise<void> {
    this.#deliver(change);
    await this.barrier(PROPAGATION_WAIT_MS);
  }

  isCurrent(): boolean {
    return this.#freshness.isCurrent(this.#now(), this.options.maxStalenessMs);
  }

  /**
   * Settles once every other live replica (one that pinged within three heartbeats) has applied every
   * change committed before this call, or after `timeoutMs`. Notifications arrive in commit order, so a
   * replica that answers the barrier has applied what came before it. A revocation awaits it before it is
   * answered: its next call through any replica is refused, not only the calls after a few milliseconds.
   * Returns how many replicas were waited for and how many answered.
   */
  async barrier(timeoutMs: number): Promise<{ replicas: number; answered: number }> {
    const liveSince = this.#now() - 3 * this.#heartbeatMs;
    const live = [...this.#replicasSeen].filter(([, at]) => at >= liveSince).map(([replica]) => replica);
    if (live.length === 0 || !this.#subscription) return { replicas: live.length, answered: 0 };
    const id = randomUUID();
    const waiting = new Set(live);
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#barriers.set(id, { waiting, done: resolve });
      timer = setTimeout(resolve, timeoutMs);
      this.db.notify(CHANGE_CHANNEL, pingPayloadOf(this.db.schema, this.options.replicaId, this.#now(), { barrier: id })).catch(resolve);
    });
    clearTimeout(timer);
    this.#barriers.delete(id);
    return { replicas: live.length, answered: live.length - waiting.size };
  }

  /** Another replica's ping: it is live; it may raise a barrier (answered now: what came before is applied) or answer one. */
  #heardPing(n: { replica: string; sentAt: number; barrier?: string; ack?: string }): void {
    this.#replicasSeen.set(n.replica, this.#now());
    if (n.barrier !== undefined) {
      const answer = pingPayloadOf(this.db.schema, this.options.replicaId, this.#now(), { ack: n.barrier });
      this.db.notify(CHANGE_CHANNEL, answer).catch((err: unknown) => this.options.log.warn({ err }, "change feed barrier answer failed"));
    }
    const barrier = n.ack === undefined ? undefined : this.#barriers.get(n.ack);
    if (barrier) {
      barrier.waiting.delete(n.replica);
      if (barrier.waiting.size === 0) barrier.done();
    }
  }

  #deliver(change: Change): void {
    for (const follower of this.#followers) if (follower.tables.includes(change.table)) follower.changed(change);
  }

  async #resync(): Promise<void> {
    const now = this.#now();
    try {
      if (now - this.#lastFullReloadAt >= Math.max(FULL_RELOAD_INTERVAL_MS, this.options.resyncMs)) {
        await this.reload();
        return;
      }
      const due = this.#followers.filter((f) => now - this.#lastRefreshAt.get(f)! >= Math.max(f.refreshMs, this.options.resyncMs));
      for (const follower of due) this.#lastRefreshAt.set(follower, now);
      await Promise.all(due.map((f) => f.refresh()));
    } catch (err) {
      this.options.log.warn({ err }, "change feed resync failed");
    }
  }

  async #heartbeat(): Promise<void> {
    if (!this.#subscription) return;
    // A connection can go silent without closing (a failover, a cut path: no reset, and TCP keepalive tells
    // after hours). Pings that no longer come back are the sign: once the state could not be vouched for
    // anyway, the connection is dropped and recovered like a lost one, instead of failing closed until then.
    if (this.#now() - this.#lastHeardAt > this.options.maxStalenessMs + this.#heartbeatMs) {
      const silent = this.#subscription;
      silent.close().catch(() => {});
      this.#onLost(new Error(`no ping came back over the notification connection for ${this.options.maxStalenessMs} ms`));
      return;
    }
    const payload = pingPayloadOf(this.db.schema, this.options.replicaId, this.#now());
    await this.db.notify(CHANGE_CHANNEL, payload).catch((err: unknown) => this.options.log.warn({ err }, "change feed ping failed"));
  }

  async #listen(): Promise<void> {
    const subscription = await this.db.listen(CHANGE_CHANNEL, this.#onNotification, this.#onLost);
    // Stopped while it connected: stop() already closed what it knew of.
    if (this.#stopped) return void (await subscription.close());
    this.#subscription = subscription;
    this.#lastHeardAt = this.#now();
    this.#freshness.listening();
  }

  readonly #onNotification = (payload: string) => {
    const n = parseNotification(payload, this.db.schema);
    if (n.type === "ping") {
      if (n.replica !== this.options.replicaId) this.#heardPing(n);
      else if (n.barrier === undefined && n.ack === undefined) {
        this.#lastHeardAt = this.#now();
        this.#freshness.pingEchoed(n.sentAt);
      }
      return;
    }
    try {
      if (n.type === "unreadable") throw new Error("unreadable change notification");
      if (n.type === "change") this.#deliver(n.change);
    } catch (err) {
      // Something committed was not applied: nothing held is vouched for until a reload replaced it all.
      this.options.log.error({ err }, "change notification not applied; reloading");
      this.#freshness.mustReload();
      this.#recovering = this.reload().catch((reloadErr: unknown) => this.options.log.warn({ err: reloadErr }, "change feed reload failed"));
    }
  };

  readonly #onLost = (err: Error) => {
    this.#subscription = null;
    this.#freshness.lost();
    this.options.log.warn({ err }, "change notifications lost; reconnecting");
    this.#scheduleRecovery();
  };

  /**
   * Exponential backoff with jitter, from 50 ms up to the heartbeat: gentle on a database that is coming
   * back (or near max_connections), yet never more than a heartbeat between tries, so a replica serves
   * again within about a second of the database taking connections. One recovery at a time: a loss heard
   * while one is scheduled or running is its to repair (two would each open a notification connection,
   * and on a full server the ones left over starve the pool).
   */
  #scheduleRecovery(): void {
    if (this.#stopped || this.#recoveryOwned) return;
    this.#recoveryOwned = true;
    const delay = jittered(Math.min(this.#heartbeatMs, 50 * 2 ** this.#recoveryAttempts++));
    this.#reconnectTimer = setTimeout(() => (this.#recovering = this.#recover()), delay);
    this.#reconnectTimer.unref();
  }

  /** Re-subscribes, then reloads (what was announced meanwhile was not heard); retries until both work. */
  async #recover(): Promise<void> {
    let failure: unknown;
    try {
      if (!this.#subscription) await this.#listen();
      await this.reload();
    } catch (err) {
      failure = err;
    }
    this.#recoveryOwned = false;
    if (this.#stopped) return;
    if (failure !== undefined) this.options.log.warn({ err: failure }, "change notifications still down");
    // Lost again while this one reloaded: its loss was left to this recovery.
    if (failure !== undefined || !this.#subscription) return this.#scheduleRecovery();
    this.#recoveryAttempts = 0;
    this.options.log.info("change notifications restored");
  }
}
