import { Transform, type TransformCallback } from "node:stream";
import { continuesAfterBreak, lineBreakStart } from "./wrapped.js";
import { matchedRanges, mergeRanges, occurrences, REDACTED_BYTES, replacedParts, type Range, type Redaction } from "./redaction.js";

/** The most a redaction crossing the window's cut is held back for (see cutWindow). */
export const MAX_HELD_BYTES = 64 * 1024;

/**
 * Where a window of bytes may be cut. The window is `held` (what an earlier cut kept back) followed by
 * `chunk`, searched without joining them. Everything before `emit` is final: it goes on as the parts
 * `out`, its matches replaced (none when there is nothing yet), written over the chunk's own bytes
 * where it fits (see finalParts): the chunk is the caller's no more. The rest is copied out to be held for
 * the next chunk. A secret form not yet complete starts at or after `length - maxLength + 1`, so only that
 * tail can still change; a merged redaction crossing that point is held back whole, so a longer
 * overlapping form can still extend it.
 */
export function cutWindow(redaction: Redaction, held: Buffer, chunk: Buffer, final: boolean): { out: Buffer[]; rest: Buffer; count: number } {
  // A chunk shorter than a form is joined to what was held: the tail a form may still complete in then
  // lies in one buffer (the copy is small).
  if (held.length > 0 && chunk.length < redaction.maxLength) [held, chunk] = [Buffer.alloc(0), Buffer.concat([held, chunk])];
  const length = held.length + chunk.length;
  const ranges = rangesOf(redaction, held, chunk);
  let emit = final ? length : held.length + heldFrom(redaction, chunk);
  const crossing = ranges.find((r) => r.start < emit && r.end > emit);
  // A chain of overlapping forms could otherwise be held back without end: past the bound it is cut after.
  if (crossing) emit = length - crossing.start > MAX_HELD_BYTES + redaction.maxLength ? crossing.end : crossing.start;
  const done = ranges.filter((r) => r.end <= emit);
  const window = [held, chunk];
  // The rest is copied out first: writing in place changes only bytes of the chunk before the cut.
  const rest = Buffer.concat(replacedParts(window, emit, length, []));
  const out = done.length === 0 && held.length === 0 ? [chunk.subarray(0, emit)] : finalParts(held, chunk, emit, done);
  return { out: out.filter((part) => part.length > 0), rest, count: done.length };
}

/**
 * The output of a window: written over the chunk's own bytes if it fits there whole (one part); else what
 * comes before the chunk's first byte that no replacement straddles (the held bytes, a secret cut by the
 * previous chunk's end: a few bytes, copied) as a part of its own, and the rest in place; else joined.
 */
function finalParts(held: Buffer, chunk: Buffer, emit: number, ranges: readonly Range[]): Buffer[] {
  const whole = writtenInPlace(held, chunk, 0, emit, ranges);
  if (whole) return [whole];
  const straddling = ranges.find((r) => r.start < held.length && r.end > held.length);
  const split = Math.min(straddling?.end ?? held.length, emit);
  const head = joined(replacedParts([held, chunk], 0, split, ranges.filter((r) => r.end <= split)));
  const tail = writtenInPlace(held, chunk, split, emit, ranges.filter((r) => r.start >= split));
  if (tail) return head ? [head, tail] : [tail];
  const all = joined(replacedParts([held, chunk], 0, emit, ranges));
  return all ? [all] : [];
}

/**
 * Window bytes [from, emit), the ranges in it replaced, written into the chunk's own memory, ending where
 * the cut is: the parts are placed right to left, each kept run moved right by what the replacements
 * after it saved, held bytes in front. Undefined when that does not fit (a replacement longer than what it
 * replaces, with no room made after it; held bytes with no replacement to make room for them). The
 * chunk's bytes before `from` are free to be written over (they went out already, copied).
 *
 * Why not join the parts in a new buffer: that doubles the external memory a redacted stream allocates,
 * and external memory drives V8's full collections of the broker's whole heap (on Node 24 above all).
 * Measured, 256 MiB of secret-dense body through one broker on Node 24: 790-830 ms of CPU per transfer
 * joining, 590-640 in place (both without the V8 flag of bin/v8-flags.js, which takes it lower still).
 */
function writtenInPlace(held: Buffer, chunk: Buffer, from: number, emit: number, ranges: readonly Range[]): Buffer | undefined {
  const end = emit - held.length;
  if (end <= 0) return undefined;
  // Laid out once to check that every part fits (nothing is written over bytes still to be moved), then
  // again to write it: a layout that does not fit leaves the chunk as it was.
  const start = layOut(held, chunk, from, emit, ranges, false);
  if (start === undefined) return undefined;
  layOut(held, chunk, from, emit, ranges, true);
  return chunk.subarray(start, end);
}

/** writtenInPlace's layout, right to left: where the output starts in the chunk, or undefined if it does not fit. */
function layOut(held: Buffer, chunk: Buffer, from: number, emit: number, ranges: readonly Range[], write: boolean): number | undefined {
  const H = held.length;
  let at = emit - H;
  /** Window bytes [start, to) kept as they are, placed to end at `at`; chunk bytes before `needed` are still to be moved. */
  const keep = (start: number, to: number, needed: number): boolean => {
    if (to > H) {
      const first = Math.max(start, H) - H;
      const dest = at - (to - H - first);
      if (dest < needed) return false;
      if (write) chunk.copyWithin(dest, first, to - H);
      at = dest;
    }
    if (start < H) {
      const dest = at - (Math.min(to, H) - start);
      if (dest < 0) return false;
      if (write) held.copy(chunk, dest, start, Math.min(to, H));
      at = dest;
    }
    return true;
  };
  let to = emit;
  for (let i = ranges.length - 1; i >= 0; i--) {
    const range = ranges[i]!;
    // The chunk's bytes before the range's start are still to be moved: nothing may be written over them.
    const needed = Math.max(0, range.start - H);
    if (!keep(range.end, to, needed) || at - REDACTED_BYTES.length < needed) return undefined;
    at -= REDACTED_BYTES.length;
    if (write) REDACTED_BYTES.copy(chunk, at);
    to = range.start;
  }
  return keep(from, to, 0) ? at : undefined;
}

/**
 * The merged ranges of `held` followed by `chunk`: those in the chunk, searched in place, and those
 * starting in what was held, searched in the seam (the held bytes and the chunk's first maxLength - 1).
 */
function rangesOf(redaction: Redaction, held: Buffer, chunk: Buffer): Range[] {
  if (held.length === 0) return matchedRanges(redaction, chunk);
  const seam = Buffer.concat([held, chunk.subarray(0, redaction.maxLength - 1)]);
  return mergeRanges([...occurrences(redaction, seam, 0, held.length), ...occurrences(redaction, chunk, held.length)]);
}

/**
 * Where the bytes held back until the next chunk begin: after the last line feed among the chunk's last
 * maxLength - 1 bytes, else at the first of them. A form not yet complete lies in that tail, and none
 * holds a line feed (else the whole tail is held). What is held must not depend on whether those bytes
 * could begin a secret form: held, they reach the agent only when the upstream sends more, so an agent
 * echoing guesses through an upstream that pauses after each write would read the secret off the
 * delays, a byte at a time (REQ-57). Line-delimited streams (SSE, JSON lines) still go out at every line.
 */
function heldFrom(redaction: Redaction, data: Buffer): number {
  const tailStart = Math.max(0, data.length - (redaction.maxLength - 1));
  if (!redaction.lineFeedFree) return tailStart;
  const lineFeed = data.subarray(tailStart).lastIndexOf(LINE_FEED);
  if (lineFeed === -1) return tailStart;
  // A line of wrapped base64 (MIME, PEM), or one ending in a quoted-printable soft line break, may go on
  // with the rest of a secret's form on the next: held as a line that is not one. Whether a line is
  // depends on its characters, not on the secret.
  if (redaction.wrapsLines && continuesAfterBreak(data, lineBreakStart(data, tailStart + lineFeed))) return tailStart;
  return tailStart + lineFeed + 1;
}

const LINE_FEED = 0x0a;

/**
 * The final parts of a window as one chunk. Pushed apart, each part became a write of its own
 * downstream: a response's buffer is smaller than a part, so every write met backpressure and went out
 * in a tick (and a `writev`) of its own. Measured on 256 MiB of secret-dense body through an HTTP
 * server: 4.9 s of CPU for six transfers pushed apart, 4.0 s joined (the copy included), 2.9 s with no
 * redaction stage. A window with nothing replaced and nothing held is one part, passed on uncopied.
 */
function joined(parts: Buffer[]): Buffer | undefined {
  const nonEmpty = parts.filter((part) => part.length > 0);
  if (nonEmpty.length === 0) return undefined;
  return nonEmpty.length === 1 ? nonEmpty[0] : Buffer.concat(nonEmpty);
}

/**
 * Replaces the secrets of a Redaction in a byte stream as it passes: a sliding window holds back at most
 * the longest pattern's length (plus a redaction crossing the cut), never the whole body. `beforeEnd`
 * runs once the whole input has been searched, with the number of redactions, before the held-back tail
 * is released: the proxy writes its audit event there, so no response is complete before it is recorded.
 * Chunks written to it become its own (secrets are replaced in their bytes): an upstream's body, which
 * nothing else reads.
 */
export class RedactingStream extends Transform {
  #held: Buffer = Buffer.alloc(0);
  #count = 0;

  constructor(
    private readonly redaction: Redaction,
    private readonly beforeEnd: (count: number) => Promise<void>,
  ) {
    super();
  }

  /** Redactions made so far. */
  get count(): number {
    return this.#count;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.redaction.patterns.length === 0) return done(null, chunk);
    const { out, rest, count } = cutWindow(this.redaction, this.#held, chunk, false);
    this.#count += count;
    this.#held = rest;
    done(null, this.#pushAllButLast(out));
  }

  /** A window's parts: all but the last pushed here, the last returned for the callback to pass on. */
  #pushAllButLast(out: Buffer[]): Buffer | undefined {
    for (const part of out.slice(0, -1)) this.push(part);
    return out.at(-1);
  }

  override _flush(done: TransformCallback): void {
    const { out, count } = cutWindow(this.redaction, this.#held, Buffer.alloc(0), true);
    this.#count += count;
    this.#held = Buffer.alloc(0);
    this.beforeEnd(this.#count).then(
      () => done(null, this.#pushAllButLast(out)),
      (err: Error) => done(err),
    );
  }
}
