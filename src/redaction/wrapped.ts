import type { Range } from "./redaction.js";
import { compilePatternSearch } from "./search.js";

/**
 * Base64 wrapped into lines: MIME (RFC 2045) breaks it every 76 characters, PEM (RFC 7468) every 64, with
 * CRLF or LF; inside a JSON string (a certificate or a MIME part as a JSON value) the breaks are the
 * escapes `\n` and `\r\n`. A secret's base64 form cut by such a break holds no literal form. Not searched
 * for as one literal pattern per place the break can fall (hundreds per secret, each slowing every
 * search), nor by pieces of the form (shorter patterns: measured 1.9 times the search's time on 1 MiB of
 * JSON): the line feeds and escaped ones are found first (memchr, ~20 µs per MiB each), and only at one
 * that ends a line of base64 are the characters around it, its breaks taken out, searched for the forms.
 * Pure.
 */

/** The narrowest line searched across: PEM's. MIME's are wider; a break after fewer base64 characters is not one of theirs. */
export const MIN_LINE_WIDTH = 64;

const CR = 0x0d;
const LF = 0x0a;
const BACKSLASH = 0x5c;
const LETTER_N = 0x6e;
const LETTER_R = 0x72;
/** A line feed escaped in a JSON string; `\r\n` ends with it too. */
const ESCAPED_LF = Buffer.from("\\n");

const BASE64 = new Uint8Array(256);
for (const c of Buffer.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")) BASE64[c] = 1;

/** The longest a form of `length` characters can be wrapped: an escaped CRLF (`\r\n`, 4 bytes) per MIN_LINE_WIDTH characters, rounded up. */
export const maxWrappedLength = (length: number) => length + 4 * Math.ceil(length / MIN_LINE_WIDTH);

/** Where the line break whose line feed is at `lineFeed` starts: at its carriage return, if it is a CRLF. */
export const lineBreakStart = (data: Uint8Array, lineFeed: number) => (data[lineFeed - 1] === CR ? lineFeed - 1 : lineFeed);

/**
 * Whether the line a break starting at `at` ends is one of wrapped base64: at least MIN_LINE_WIDTH base64
 * characters before it, or as many as there are before the data's start (what came before is unknown:
 * taken as such, so a stream finds what a whole body does).
 */
export function endsWrappedLine(data: Uint8Array, at: number): boolean {
  for (let p = at - 1, seen = 0; seen < MIN_LINE_WIDTH; p--, seen++) {
    if (p < 0) return true;
    if (BASE64[data[p]!] === 0) return false;
  }
  return true;
}

/**
 * Where the line break whose last byte is at `end` starts: a line feed (at its carriage return, if it is a
 * CRLF), or the `n` of an escaped `\n` (at the escape of its `\r`, if there is one). -1 if no break ends there.
 */
function breakEndingAt(data: Uint8Array, end: number): number {
  if (data[end] === LF) return lineBreakStart(data, end);
  if (data[end] !== LETTER_N || data[end - 1] !== BACKSLASH) return -1;
  return data[end - 2] === LETTER_R && data[end - 3] === BACKSLASH ? end - 3 : end - 1;
}

/** Where the line break that starts at `start` ends (its last byte), or -1 if none starts there. */
function breakStartingAt(data: Uint8Array, start: number): number {
  const first = data[start];
  if (first === LF) return start;
  if (first === CR) return data[start + 1] === LF ? start + 1 : -1;
  if (first !== BACKSLASH) return -1;
  if (data[start + 1] === LETTER_N) return start + 1;
  return data[start + 1] === LETTER_R && data[start + 2] === BACKSLASH && data[start + 3] === LETTER_N ? start + 3 : -1;
}

/**
 * The break whose last byte is at `end`, if it ends a line of wrapped base64 that goes on after it between
 * two characters that follow each other in some form (`pairs`): where it starts.
 */
function wrappedBreak(data: Uint8Array, end: number, pairs: Uint8Array): number | undefined {
  const start = breakEndingAt(data, end);
  if (start <= 0 || BASE64[data[start - 1]!] === 0 || BASE64[data[end + 1]!] !== 1) return undefined;
  if (pairs[pair(data[start - 1]!, data[end + 1]!)] === 0) return undefined;
  return endsWrappedLine(data, start) ? start : undefined;
}

const pair = (first: number, second: number) => ((first << 4) ^ second) & 4095;

export type WrappedSearch = {
  /** Adds to `found` where a form occurs in `data` with a line break in it, shifted by `offset`; only those starting before `startsBefore`. */
  find(data: Uint8Array, offset: number, startsBefore: number, found: Range[]): void;
  /** The most bytes one occurrence can span. */
  readonly maxLength: number;
};

export function compileWrappedSearch(forms: readonly Uint8Array[]): WrappedSearch | undefined {
  if (forms.length === 0) return undefined;
  const longest = Math.max(...forms.map((form) => form.length));
  const search = compilePatternSearch(forms);
  // The characters around a break and where each lies in the data: allocated once, reused at every break
  // (nothing else runs meanwhile). Arrays built per break made a MIME body 100 times slower to search.
  const joined = new Uint8Array(2 * longest);
  const positions = new Int32Array(2 * longest);
  // The pairs of characters that follow each other in some form (in 4,096 slots, as the search's blocks):
  // a break between two characters that are none can have no form across it. Most breaks of a MIME body
  // go no further: measured on 1 MiB of MIME text, 17 ms per search without this check, 3.5 to 6 with
  // (1 to 1.5 for the literal forms alone).
  const pairs = new Uint8Array(4096);
  for (const form of forms) for (let i = 1; i < form.length; i++) pairs[pair(form[i - 1]!, form[i]!)] = 1;
  return {
    maxLength: maxWrappedLength(longest),
    find(data, offset, startsBefore, found) {
      /** The forms across the break whose last byte is at `end`. */
      const across = (end: number) => {
        const start = wrappedBreak(data, end, pairs);
        if (start === undefined) return;
        // Backwards from the break, then forwards after it, across other breaks of wrapped lines. A break
        // is looked for before a base64 character: the `n` of an escaped `\n` is one.
        let count = 0;
        for (let p = start - 1; p >= 0 && count < longest - 1; p--) {
          const breakStart = breakEndingAt(data, p);
          if (breakStart === -1) {
            if (BASE64[data[p]!] === 0) break;
            positions[count++] = p;
          } else {
            if (breakStart === 0 || !endsWrappedLine(data, breakStart)) break;
            p = breakStart;
          }
        }
        positions.subarray(0, count).reverse();
        const joint = count;
        for (let p = end + 1; p < data.length && count < joint + longest - 1; p++) {
          if (BASE64[data[p]!] === 1) positions[count++] = p;
          else {
            const breakEnd = breakStartingAt(data, p);
            if (breakEnd === -1 || BASE64[data[breakEnd + 1]!] !== 1 || !endsWrappedLine(data, p)) break;
            p = breakEnd;
          }
        }
        for (let i = 0; i < count; i++) joined[i] = data[positions[i]!]!;
        // An occurrence that spans the joint crosses this break: mapped back to where its bytes lie.
        for (const range of search.find(joined.subarray(0, count))) {
          if (range.start >= joint || range.end <= joint) continue;
          const from = positions[range.start]!;
          if (from < startsBefore) found.push({ start: offset + from, end: offset + positions[range.end - 1]! + 1 });
        }
      };
      for (let lineFeed = data.indexOf(LF); lineFeed !== -1; lineFeed = data.indexOf(LF, lineFeed + 1)) across(lineFeed);
      // A view of the same bytes, for Buffer's search of a two-byte needle.
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      for (let escaped = bytes.indexOf(ESCAPED_LF); escaped !== -1; escaped = bytes.indexOf(ESCAPED_LF, escaped + 2)) across(escaped + 1);
    },
  };
}
