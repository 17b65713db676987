/** An entry, linked in recency order: `older` towards the least recently used, `newer` towards the most. */
type Entry<K, V> = { key: K; value: V; older: Entry<K, V> | null; newer: Entry<K, V> | null };

/**
 * A Map holding at most `maxEntries`: a lookup makes its entry the most recently used, and adding one
 * past the limit drops the least recently used. The entries are linked in recency order, so a lookup
 * is one hash lookup and a few links moved (the verified-token cache looks one up on every proxied call,
 * by a key of several hundred characters: re-inserting it into the Map cost two more hash operations).
 */
export class LruMap<K, V> {
  readonly #entries = new Map<K, Entry<K, V>>();
  #oldest: Entry<K, V> | null = null;
  #newest: Entry<K, V> | null = null;

  constructor(private readonly maxEntries: number) {}

  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry !== this.#newest) {
      this.#unlink(entry);
      this.#append(entry);
    }
    return entry.value;
  }

  /** The value, leaving its recency as it is. */
  peek(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /** A new key is the most recently used; an existing one keeps its place and takes the new value. */
  set(key: K, value: V): void {
    const held = this.#entries.get(key);
    if (held !== undefined) {
      held.value = value;
      return;
    }
    const entry: Entry<K, V> = { key, value, older: null, newer: null };
    this.#entries.set(key, entry);
    this.#append(entry);
    if (this.#entries.size > this.maxEntries) this.delete(this.#oldest!.key);
  }

  delete(key: K): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#unlink(entry);
  }

  clear(): void {
    this.#entries.clear();
    this.#oldest = this.#newest = null;
  }

  /** Every entry, the least recently used first. */
  *entries(): IterableIterator<[K, V]> {
    for (let entry = this.#oldest; entry !== null; entry = entry.newer) yield [entry.key, entry.value];
  }

  #append(entry: Entry<K, V>): void {
    entry.older = this.#newest;
    entry.newer = null;
    if (this.#newest !== null) this.#newest.newer = entry;
    this.#newest = entry;
    this.#oldest ??= entry;
  }

  #unlink(entry: Entry<K, V>): void {
    if (entry.older !== null) entry.older.newer = entry.newer;
    else this.#oldest = entry.newer;
    if (entry.newer !== null) entry.newer.older = entry.older;
    else this.#newest = entry.older;
    entry.older = entry.newer = null;
  }
}
