import type { Range } from "./redaction.js";
import { compilePatternSearch, type PatternSearch } from "./search.js";

/**
 * Base64 wrapped into lines: MIME (RFC 2045) breaks it every 76 characters, PEM (RFC 7468) every 64, with
 * CRLF or LF; inside a JSON string (a certificate or a MIME part as a JSON value) the breaks are the
 * escapes `\n` and `\r\n`. A secret's base64 form cut by such a break holds no literal form. Not searched
 * for as one literal pattern per place the break can fall (hundreds per secret, each slowing every
 * search), nor by pieces of the form (shorter patterns: measured 1.9 times the search's time on 1 MiB of
 * JSON): the line feeds and escaped ones are found first (memchr, ~20 µs per MiB each), and only at one
 * that ends a line of base64 are the characters around it, its breaks taken out, searched for the forms.
 * Quoted-printable text (an e-mail body) is wrapped the same way, at 76 characters with soft line breaks
 * (`=` and CRLF): the secret, as sent and quoted-printable, is searched for across a line feed after an
 * `=` that ends such a line. Pure.
 */

/** The narrowest line searched across: PEM's. MIME's are wider; a break after fewer base64 characters is not one of theirs. */
export const MIN_LINE_WIDTH = 64;

const CR = 0x0d;
const LF = 0x0a;
const BACKSLASH = 0x5c;
const LETTER_N = 0x6e;
const LETTER_R = 0x72;
const EQUALS = 0x3d;

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
 * Whether the line whose quoted-printable soft line break (`=` and a line break) has its `=` at `equals` is
 * one of an encoder's: at least MIN_LINE_WIDTH characters (they write up to 76) and no line break among
 * them, or as many as there are before the data's start.
 */
export function endsSoftLine(data: Uint8Array, equals: number): boolean {
  if (data[equals] !== EQUALS) return false;
  for (let p = equals - 1, seen = 0; seen < MIN_LINE_WIDTH; p--, seen++) {
    if (p < 0) return true;
    if (data[p] === LF || data[p] === CR) return false;
  }
  return true;
}

/**
 * Whether the line a break starting at `at` ends may go on with a form on the next line: a line of
 * wrapped base64, or one that ends in a quoted-printable soft line break. Decided by the line's
 * characters, not by any secret.
 */
export const continuesAfterBreak = (data: Uint8Array, at: number) => endsWrappedLine(data, at) || endsSoftLine(data, at - 1);

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

/** The forms as one search, and the pairs of characters that follow each other in some form (in 4,096 slots, as the search's blocks). */
type Forms = { search: PatternSearch; longest: number; pairs: Uint8Array };

function compileForms(forms: readonly Uint8Array[]): Forms | undefined {
  if (forms.length === 0) return undefined;
  const pairs = new Uint8Array(4096);
  for (const form of forms) for (let i = 1; i < form.length; i++) pairs[pair(form[i - 1]!, form[i]!)] = 1;
  return { search: compilePatternSearch(forms), longest: Math.max(...forms.map((form) => form.length)), pairs };
}

/**
 * `base64` are searched for across the line breaks of wrapped base64, `softWrapped` across quoted-
 * printable soft line breaks.
 */
export function compileWrappedSearch(base64: readonly Uint8Array[], softWrapped: readonly Uint8Array[] = []): WrappedSearch | undefined {
  const wrapped = compileForms(base64);
  const soft = compileForms(softWrapped);
  if (!wrapped && !soft) return undefined;
  const longest = Math.max(wrapped?.longest ?? 0, soft?.longest ?? 0);
  // The characters around a break and where each lies in the data: allocated once, reused at every break
  // (nothing else runs meanwhile). Arrays built per break made a MIME body 100 times slower to search.
  const joined = new Uint8Array(2 * longest);
  const positions = new Int32Array(2 * longest);

  /**
   * The first `count` characters of `positions` searched for the forms: an occurrence that spans the joint
   * crosses the break, mapped back to where its bytes lie.
   */
  const searchJoined = (forms: Forms, data: Uint8Array, count: number, joint: number, offset: number, startsBefore: number, found: Range[]) => {
    for (let i = 0; i < count; i++) joined[i] = data[positions[i]!]!;
    for (const range of forms.search.find(joined.subarray(0, count))) {
      if (range.start >= joint || range.end <= joint) continue;
      const from = positions[range.start]!;
      if (from < startsBefore) found.push({ start: offset + from, end: offset + positions[range.end - 1]! + 1 });
    }
  };

  /** The base64 forms across the break whose last byte is at `end`, if it is one of wrapped base64. */
  const acrossWrapped = (forms: Forms, data: Uint8Array, end: number, offset: number, startsBefore: number, found: Range[]) => {
    // The pairs of characters around a break: most breaks of a MIME body go no further. Measured on 1 MiB of
    // MIME text, 17 ms per search without this check, 3.5 to 6 with (1 to 1.5 for the literal forms alone).
    const start = wrappedBreak(data, end, forms.pairs);
    if (start === undefined) return;
    // Backwards from the break, then forwards after it, across other breaks of wrapped lines. A break is
    // looked for before a base64 character: the `n` of an escaped `\n` is one.
    let count = 0;
    for (let p = start - 1; p >= 0 && count < forms.longest - 1; p--) {
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
    for (let p = end + 1; p < data.length && count < joint + forms.longest - 1; p++) {
      if (BASE64[data[p]!] === 1) positions[count++] = p;
      else {
        const breakEnd = breakStartingAt(data, p);
        if (breakEnd === -1 || BASE64[data[breakEnd + 1]!] !== 1 || !endsWrappedLine(data, p)) break;
        p = breakEnd;
      }
    }
    searchJoined(forms, data, count, joint, offset, startsBefore, found);
  };

  /** The forms across the line break whose line feed is at `lineFeed`, if it is a soft line break. */
  const acrossSoft = (forms: Forms, data: Uint8Array, lineFeed: number, offset: number, startsBefore: number, found: Range[]) => {
    const equals = lineBreakStart(data, lineFeed) - 1;
    if (equals <= 0 || lineFeed + 1 >= data.length || forms.pairs[pair(data[equals - 1]!, data[lineFeed + 1]!)] === 0) return;
    if (!endsSoftLine(data, equals)) return;
    // Backwards from the `=`, then forwards after the break, across other soft line breaks.
    let count = 0;
    for (let p = equals - 1; p >= 0 && count < forms.longest - 1; p--) {
      if (data[p] === CR) break;
      if (data[p] !== LF) positions[count++] = p;
      else {
        const before = lineBreakStart(data, p) - 1;
        if (before <= 0 || !endsSoftLine(data, before)) break;
        p = before;
      }
    }
    positions.subarray(0, count).reverse();
    const joint = count;
    for (let p = lineFeed + 1; p < data.length && count < joint + forms.longest - 1; p++) {
      const feed = data[p] === EQUALS ? (data[p + 1] === CR ? p + 2 : p + 1) : -1;
      if (feed !== -1 && data[feed] === LF) {
        if (!endsSoftLine(data, p)) break;
        p = feed;
      } else if (data[p] === LF || data[p] === CR) break;
      else positions[count++] = p;
    }
    searchJoined(forms, data, count, joint, offset, startsBefore, found);
  };

  return {
    maxLength: maxWrappedLength(longest),
    find(data, offset, startsBefore, found) {
      for (let lineFeed = data.indexOf(LF); lineFeed !== -1; lineFeed = data.indexOf(LF, lineFeed + 1)) {
        if (wrapped) acrossWrapped(wrapped, data, lineFeed, offset, startsBefore, found);
        if (soft && data[lineBreakStart(data, lineFeed) - 1] === EQUALS) acrossSoft(soft, data, lineFeed, offset, startsBefore, found);
      }
      if (!wrapped) return;
      // Escaped breaks by their backslash (a one-byte search costs ~15 ns a call, a two-byte one ~140). A
      // backslash is no base64 character: a break that ends a line of wrapped base64 starts at this one or
      // MIN_LINE_WIDTH base64 characters after it, so the search goes on from there. JSON dense with
      // escapes (Python's `\u` for every non-ASCII character) costs a search per line's width, not per escape.
      for (let escape = data.indexOf(BACKSLASH); escape !== -1; escape = data.indexOf(BACKSLASH, escape + MIN_LINE_WIDTH + 1)) {
        const end = breakStartingAt(data, escape);
        if (end !== -1) acrossWrapped(wrapped, data, end, offset, startsBefore, found);
      }
    },
  };
}
