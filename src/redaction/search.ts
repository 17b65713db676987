import type { Range } from "./redaction.js";

/**
 * Every occurrence of any of several byte patterns in one pass over the data (Wu and Manber's multi-
 * pattern search, on blocks of two bytes). Compiled once per set of secrets.
 *
 * Why not `Buffer#indexOf` once per pattern: that is one pass per pattern, and a secret has a dozen
 * forms or more (src/redaction/forms.ts), more again during a rotation. Measured on this project's machine,
 * 256 MiB in 64 KiB chunks, Node 20, data in cache:
 *
 * | secret (forms)                        | body        | indexOf per form | this search |
 * | ------------------------------------- | ----------- | ---------------: | ----------: |
 * | `bench-upstream-secret` (4)           | JSON text   |            50 ms |       26 ms |
 * | an AWS secret key with `/` (7)        | JSON text   |            84 ms |       18 ms |
 * | AWS key + GitHub token, rotating (11) | base64 text |           316 ms |       27 ms |
 * | `bench-upstream-secret` (4)           | all `a`     |            13 ms |       27 ms |
 *
 * The last row is `indexOf`'s best case, a text with none of the forms' bytes in it.
 */
export type PatternSearch = {
  /**
   * Where each pattern occurs in `data` (overlapping occurrences too, in no particular order), shifted
   * by `offset`; only those starting before `startsBefore`.
   */
  find(data: Uint8Array, offset?: number, startsBefore?: number): Range[];
};

/**
 * Two bytes as one of 4,096 table slots. Not one slot per pair of bytes (65,536): the tables are kept
 * per upstream (with 65,536 slots, 576 KiB each), and a pair that shares a slot only shortens a shift
 * (the search stays exact). Measured: ~7 KiB per compiled set of secrets, all included, and 24-27 ms per
 * 256 MiB of the bench's body against 21-24 with 65,536 slots.
 */
const SLOTS = 4096;
const block = (first: number, second: number) => ((first << 4) ^ second) & (SLOTS - 1);

export function compilePatternSearch(patterns: readonly Uint8Array[]): PatternSearch {
  if (patterns.length === 0) return { find: () => [] };
  // Every pattern's first `span` bytes are what the window is compared on; a shift is at most span - 1.
  // Forms are at least 8 bytes (MIN_FORM_LENGTH); the shifts fit a byte.
  const span = Math.min(256, ...patterns.map((p) => p.length));
  if (span < 2) throw new Error("patterns must be at least 2 bytes long");
  /** By the two bytes that end a window: how far the window may move without passing an occurrence. */
  const shifts = new Uint8Array(SLOTS).fill(span - 1);
  /** By the two bytes that end a window: the patterns that may start where the window starts. */
  const candidates = new Map<number, Uint8Array[]>();
  for (const pattern of patterns) {
    for (let j = 1; j < span; j++) {
      const b = block(pattern[j - 1]!, pattern[j]!);
      shifts[b] = Math.min(shifts[b]!, span - 1 - j);
    }
    const last = block(pattern[span - 2]!, pattern[span - 1]!);
    candidates.set(last, [...(candidates.get(last) ?? []), pattern]);
  }
  const tables: Tables = { span, shifts, candidates };
  return { find: (data, offset = 0, startsBefore = data.length) => findAll(tables, data, offset, startsBefore) };
}

type Tables = { span: number; shifts: Uint8Array; candidates: ReadonlyMap<number, readonly Uint8Array[]> };

/**
 * The search itself. Everything its loops read is a local variable: read from a closure, it would come
 * from the closure's context at every step.
 */
function findAll(tables: Tables, data: Uint8Array, offset: number, startsBefore: number): Range[] {
  const { span, shifts } = tables;
  const found: Range[] = [];
  // Windows end at [first, stop). They start before `startsBefore` while they end before startsBefore +
  // span - 1. An integer: with an infinite bound, every comparison in the loop was a floating-point one
  // (twice the time).
  const first = span - 1;
  const stop = Math.min(data.length, startsBefore + span - 1);
  if (stop <= first) return found;
  // Four windows move at once, one in each quarter: a step waits on two memory reads it cannot start
  // before the previous step's shift is known, and the processor overlaps the four lanes' waits.
  // Measured on 256 MiB of JSON text, 4 forms: one lane 52 ms, two 28, four 24.
  const quarter = (stop - first) >> 2;
  const [endA, endB, endC] = [first + quarter, first + 2 * quarter, first + 3 * quarter];
  let [a, b, c, d] = [first, endA, endB, endC];
  while (a < endA && b < endB && c < endC && d < stop) {
    const shiftA = shifts[block(data[a - 1]!, data[a]!)]!;
    const shiftB = shifts[block(data[b - 1]!, data[b]!)]!;
    const shiftC = shifts[block(data[c - 1]!, data[c]!)]!;
    const shiftD = shifts[block(data[d - 1]!, data[d]!)]!;
    if (shiftA === 0) check(tables, data, a++, offset, found);
    else a += shiftA;
    if (shiftB === 0) check(tables, data, b++, offset, found);
    else b += shiftB;
    if (shiftC === 0) check(tables, data, c++, offset, found);
    else c += shiftC;
    if (shiftD === 0) check(tables, data, d++, offset, found);
    else d += shiftD;
  }
  // Each lane's rest, on its own.
  scan(tables, data, a, endA, offset, found);
  scan(tables, data, b, endB, offset, found);
  scan(tables, data, c, endC, offset, found);
  scan(tables, data, d, stop, offset, found);
  return found;
}

/** One window moving from `from` to `to`. */
function scan(tables: Tables, data: Uint8Array, from: number, to: number, offset: number, found: Range[]): void {
  const { shifts } = tables;
  let at = from;
  while (at < to) {
    const shift = shifts[block(data[at - 1]!, data[at]!)]!;
    if (shift === 0) check(tables, data, at++, offset, found);
    else at += shift;
  }
}

/** The patterns that occur where the window ending at `end` starts (their last two bytes share its slot). */
function check(tables: Tables, data: Uint8Array, end: number, offset: number, found: Range[]): void {
  const { span, candidates } = tables;
  const start = end - span + 1;
  for (const pattern of candidates.get(block(data[end - 1]!, data[end]!))!) {
    if (start + pattern.length > data.length) continue;
    let k = 0;
    while (k < pattern.length && data[start + k] === pattern[k]) k++;
    if (k === pattern.length) found.push({ start: offset + start, end: offset + start + pattern.length });
  }
}
