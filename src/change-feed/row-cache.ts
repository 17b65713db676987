import { deepFreeze } from "../util/freeze.js";
import { LruMap } from "../util/lru.js";
import type { CachedTable, RowChange } from "./changes.js";
import type { ChangeFeed, ChangeFollower } from "./feed.js";

export type RowCacheOptions<V> = {
  /** The table whose change notifications name this cache's keys (migration 0005). */
  table: CachedTable;
  /** Most rows held; the least recently used one goes first. */
  maxEntries: number;
  /** Reads one row as stored now; `missing` when there is none (which is cached too). */
  read(key: string): Promise<V>;
  /** Reads many rows at once, for the periodic refresh; keys absent from the result no longer exist. */
  readMany(keys: string[]): Promise<Map<string, V>>;
  /** What a key without a row holds. */
  missing: V;
};

/** Rows per statement in a refresh: well under PostgreSQL's limit on bind parameters. */
const REFRESH_BATCH = 1000;
/** Caches re-read what they hold this often: a few statements per thousand rows held. */
export const CACHE_REFRESH_MS = 30_000;

/**
 * Rows of one table read from the database and held in memory, kept current by the change feed
 * (`ChangeFeed.follow`): a change announced by the table's trigger, or made on this replica,
 * drops its row at once, so the next lookup reads it as stored now. Held only while the feed can
 * vouch for having heard every change (`isCurrent`); otherwise every lookup reads the database.
 *
 * An entry is the read in flight or done, so concurrent lookups share one read. A read that a change,
 * a clear or a refresh overtook is never stored: the entry it would fill is gone or replaced. Values
 * are frozen, since every caller shares them.
 */
export class RowCache<V> implements ChangeFollower<RowChange> {
  readonly tables: readonly CachedTable[];
  readonly refreshMs = CACHE_REFRESH_MS;
  readonly #entries: LruMap<string, { value: Promise<V> }>;

  constructor(
    private readonly feed: Pick<ChangeFeed, "isCurrent" | "follow">,
    private readonly options: RowCacheOptions<V>,
  ) {
    this.tables = [options.table];
    this.#entries = new LruMap(options.maxEntries);
    feed.follow(this);
  }

  get(key: string): Promise<V> {
    if (!this.feed.isCurrent()) return this.#read(key);
    const held = this.#entries.get(key);
    if (held) return held.value;
    const entry = { value: this.#read(key) };
    this.#entries.set(key, entry);
    // A failed read is not remembered: the next lookup tries again.
    entry.value.catch(() => {
      if (this.#entries.peek(key) === entry) this.#entries.delete(key);
    });
    return entry.value;
  }

  changed({ key }: RowChange): void {
    if (key === null) this.#entries.clear();
    else this.#entries.delete(key);
  }

  /** Drops everything: what is read from now on is as stored now. */
  async reload(): Promise<void> {
    this.#entries.clear();
  }

  async refresh(): Promise<void> {
    const held = [...this.#entries.entries()];
    for (let i = 0; i < held.length; i += REFRESH_BATCH) {
      const batch = held.slice(i, i + REFRESH_BATCH);
      const rows = await this.options.readMany(batch.map(([key]) => key));
      for (const [key, entry] of batch) {
        // Changed, dropped or evicted meanwhile: what replaced it was read later than this batch.
        if (this.#entries.peek(key) !== entry) continue;
        const value = deepFreeze(rows.has(key) ? rows.get(key)! : this.options.missing);
        this.#entries.set(key, { value: Promise.resolve(value) });
      }
    }
  }

  async #read(key: string): Promise<V> {
    return deepFreeze(await this.options.read(key));
  }
}
