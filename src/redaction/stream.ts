import { Transform, type TransformCallback } from "node:stream";
import { matchedRanges, replaceRanges, type Redaction } from "./redaction.js";

/** The most a redaction crossing the window's cut is held back for (see cutWindow). */
export const MAX_HELD_BYTES = 64 * 1024;

/**
 * Where a window of bytes may be cut: everything before `emit` is final (its matches replaced), the rest
 * is held back for the next chunk. A secret form not yet complete starts at or after `data.length -
 * maxLength + 1`, so only that tail can still change; a merged redaction crossing that point is held
 * back whole, so a longer overlapping form can still extend it.
 */
export function cutWindow(redaction: Redaction, data: Buffer, final: boolean): { out: Buffer; rest: Buffer; count: number } {
  const ranges = matchedRanges(redaction, data);
  let emit = final ? data.length : firstPossibleStart(redaction, data);
  const crossing = ranges.find((r) => r.start < emit && r.end > emit);
  // A chain of overlapping forms could otherwise be held back without end: past the bound it is cut after.
  if (crossing) emit = data.length - crossing.start > MAX_HELD_BYTES + redaction.maxLength ? crossing.end : crossing.start;
  const done = ranges.filter((r) => r.end <= emit);
  return { out: replaceRanges(data.subarray(0, emit), done), rest: data.subarray(emit), count: done.length };
}

/**
 * Where, in the tail a secret form could still be completing in, the earliest such form could begin: the
 * first position whose remaining bytes are the start of some form. Bytes before it are final, so a short
 * body (or the start of one an upstream then stalls on) goes out at once instead of waiting whole.
 */
function firstPossibleStart(redaction: Redaction, data: Buffer): number {
  for (let p = Math.max(0, data.length - (redaction.maxLength - 1)); p < data.length; p++) {
    const tail = data.subarray(p);
    if (redaction.patterns.some((form) => form.length > tail.length && form[0] === tail[0] && form.subarray(0, tail.length).equals(tail))) return p;
  }
  return data.length;
}

/**
 * Replaces the secrets of a Redaction in a byte stream as it passes: a sliding window holds back at most
 * the longest pattern's length (plus a redaction crossing the cut), never the whole body. `beforeEnd`
 * runs once the whole input has been searched, with the number of redactions, before the held-back tail
 * is released: the proxy writes its audit event there, so no response is complete before it is recorded.
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
    const data = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk]);
    const { out, rest, count } = cutWindow(this.redaction, data, false);
    this.#count += count;
    // Copied: a small tail must not keep the whole chunk it was cut from alive.
    this.#held = Buffer.from(rest);
    done(null, out.length > 0 ? out : undefined);
  }

  override _flush(done: TransformCallback): void {
    const { out, count } = cutWindow(this.redaction, this.#held, true);
    this.#count += count;
    this.#held = Buffer.alloc(0);
    this.beforeEnd(this.#count).then(
      () => done(null, out.length > 0 ? out : undefined),
      (err: Error) => done(err),
    );
  }
}
