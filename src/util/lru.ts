/**
 * A Map holding at most `maxEntries`: a lookup makes its entry the most recently used, and adding one
 * past the limit drops the least recently used. Insertion order is recency order, so no bookkeeping
 * beyond the Map itself.
 */
export class LruMap<K, V> {
  readonly #entries = new Map<K, V>();

  constructor(private readonly maxEntries: number) {}

  /** The value, which becomes the most recently used. */
  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  /** The value, leaving its recency as it is. */
  peek(key: K): V | undefined {
    return this.#entries.get(key);
  }

  /** A new key is the most recently used; an existing one keeps its place and takes the new value. */
  set(key: K, value: V): void {
    this.#entries.set(key, value);
    if (this.#entries.size > this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  entries(): IterableIterator<[K, V]> {
    return this.#entries.entries();
  }
}
