import type { PrismaClient } from "@prisma/client";
import type { RevocationChange } from "../change-feed/changes.js";
import { PROPAGATION_WAIT_MS, type ChangeFeed, type ChangeFollower } from "../change-feed/feed.js";
import { forbidden, unauthenticated, unavailable } from "../http/errors.js";
import type { AgentToken } from "../tokens/claims.js";
import { recordOf } from "./records.js";
import { RevocationState, type RevocationRecord } from "./state.js";

export type RevocationServiceOptions = {
  /** Incremental sync interval: the safety net behind notifications. */
  resyncMs: number;
  /**
   * How long after its token's expiry a jti revocation stays in force: the clock-skew leeway token
   * verification allows (KEYWARD_CLOCK_SKEW_SECONDS), during which the revoked token still verifies.
   */
  keepAfterExpiryMs: number;
  /** Told of each revocation committed on this replica (the metrics: keyward_revocations_total). */
  onCommitted?: (record: RevocationRecord) => void;
  now?: () => number;
};

/**
 * Revocations in force, read from the database: every one (a full load), or only those created after
 * `createdAfter` (an incremental sync). `expiredBefore`: jti revocations of tokens that expired before it
 * can no longer be presented (see keepAfterExpiryMs).
 */
async function readRevocations(prisma: Pick<PrismaClient, "revocation">, expiredBefore: Date, createdAfter?: Date): Promise<RevocationRecord[]> {
  const rows = await prisma.revocation.findMany({
    // Lifted kill switches and jti revocations of expired tokens are forgotten.
    where: {
      liftedAt: null,
      OR: [{ expiresAt: null }, { expiresAt: { gt: expiredBefore } }],
      ...(createdAfter && { createdAt: { gt: createdAfter } }),
    },
    select: { id: true, selector: true, value: true, createdAt: true, expiresAt: true },
  });
  return rows.map((row) => recordOf({ ...row, lifted: false }));
}

/** Every revocation of tokens unexpired at `now`, read from the database: what a full load holds. */
export async function readRevocationState(prisma: Pick<PrismaClient, "revocation">, now: Date): Promise<RevocationState> {
  return RevocationState.from(await readRevocations(prisma, now));
}

/**
 * How far back an incremental sync looks before the previous one started: a revocation is found by its
 * createdAt, which its writer sets before committing, and replica clocks differ a little.
 */
const SYNC_OVERLAP_MS = 30_000;

/**
 * This replica's revocation state, checked on every proxied call without touching the database.
 *
 * A follower of the change feed (src/change-feed/feed.ts), where a trigger announces every Revocation
 * insert and update (migration 0002): loaded in full when the feed starts, after every new LISTEN and
 * every few minutes; as a safety net, every `resyncMs` it reads the revocations created since shortly
 * before the previous sync. Every check fails with 503 while the feed cannot vouch for the state.
 */
export class RevocationService implements ChangeFollower<RevocationChange> {
  readonly tables = ["Revocation"] as const;
  readonly refreshMs: number;
  #state = new RevocationState();
  /** Changes received while a load or sync runs, replayed after it (its snapshot may predate them). */
  #receivedDuringLoad: RevocationRecord[] | null = null;
  /** Full loads and incremental syncs, one at a time. */
  #loads: Promise<void> = Promise.resolve();
  #lastSyncStartedAt = -Infinity;

  constructor(
    private readonly prisma: Pick<PrismaClient, "revocation">,
    private readonly feed: Pick<ChangeFeed, "isCurrent" | "follow" | "barrier">,
    private readonly options: RevocationServiceOptions,
  ) {
    this.refreshMs = options.resyncMs;
    feed.follow(this);
  }

  #now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Tokens that expired before this can no longer be presented: their jti revocations can go. */
  #expiredBefore(nowMs: number): number {
    return nowMs - this.options.keepAfterExpiryMs;
  }

  /** A full reload from the database; loads and syncs run one at a time. */
  reload(): Promise<void> {
    return this.#queue(() => this.#loadOnce());
  }

  /**
   * Applies the revocations created since shortly before the previous sync: a safety net behind
   * notifications, not a proof of currency (a row whose transaction stayed open longer than the overlap
   * is found by the next full reload instead). Kill-switch lifts are updates, not found here: a lost one
   * keeps the switch engaged, failing closed, until the next full reload.
   */
  refresh(): Promise<void> {
    return this.#queue(() => this.#syncOnce());
  }

  #queue(task: () => Promise<void>): Promise<void> {
    const run = this.#loads.then(task);
    this.#loads = run.catch(() => {});
    return run;
  }

  async #loadOnce(): Promise<void> {
    const startedAt = this.#now();
    this.#receivedDuringLoad = [];
    try {
      const state = RevocationState.from(await readRevocations(this.prisma, new Date(this.#expiredBefore(startedAt))));
      for (const record of this.#receivedDuringLoad) state.add(record);
      this.#state = state;
      this.#lastSyncStartedAt = startedAt;
    } finally {
      this.#receivedDuringLoad = null;
    }
  }

  async #syncOnce(): Promise<void> {
    const startedAt = this.#now();
    this.#state.forgetExpired(this.#expiredBefore(startedAt));
    this.#receivedDuringLoad = [];
    try {
      const since = new Date(this.#lastSyncStartedAt - SYNC_OVERLAP_MS);
      for (const record of await readRevocations(this.prisma, new Date(this.#expiredBefore(startedAt)), since)) this.#state.add(record);
      // A lift announced while the rows were read must win over the engaged row read before it.
      for (const record of this.#receivedDuringLoad) this.#state.add(record);
      this.#lastSyncStartedAt = startedAt;
    } finally {
      this.#receivedDuringLoad = null;
    }
  }

  /** A revocation announced on the feed; one of a kind this version does not know throws (see recordOf). */
  changed(change: RevocationChange): void {
    this.applyCommitted(recordOf(change.row));
  }

  /**
   * A revocation just committed on this replica: applied here at once, and answered only once every other
   * live replica has applied it too (or after a second: one that has not by then is failing its own
   * freshness checks soon after). Then the next call through any replica is refused.
   */
  async committed(record: RevocationRecord): Promise<void> {
    this.applyCommitted(record);
    this.options.onCommitted?.(record);
    await this.feed.barrier(PROPAGATION_WAIT_MS);
  }

  /** Applies a committed revocation: announced by another replica, or just made on this one. */
  applyCommitted(record: RevocationRecord): void {
    this.#state.add(record);
    this.#receivedDuringLoad?.push(record);
  }

  isCurrent(): boolean {
    return this.feed.isCurrent();
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
