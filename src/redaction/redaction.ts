import { MIN_FORM_LENGTH, secretForms, softWrappableForms, wideForms, wrappableForms } from "./forms.js";
import { compilePatternSearch, type PatternSearch } from "./search.js";
import { compileWrappedSearch } from "./wrapped.js";

/** What a redacted value is replaced with: plain ASCII, valid inside JSON strings, URLs and headers. */
export const REDACTED = "[redacted-by-keyward]";
export const REDACTED_BYTES = Buffer.from(REDACTED);

/**
 * The secrets of one upstream, compiled once into the byte patterns searched for in its responses.
 * `maxLength` bounds the window a stream must hold back between chunks.
 */
export type Redaction = {
  readonly patterns: readonly Buffer[];
  readonly maxLength: number;
  /** The patterns compiled to be searched for together, in one pass over a body (and the base64 forms wrapped into lines, at its line feeds). */
  readonly search: PatternSearch;
  /** The same without the wrapped forms: what a header value, which holds no line break (the HTTP client refuses one), is searched with. */
  readonly valueSearch: PatternSearch;
  /** The patterns lower-cased, as text, shortest first: what a response header's name (lower-cased by the HTTP client) is searched for. */
  readonly nameForms: readonly string[];
  /** No pattern holds a line feed byte: no form continues past one (what a stream holds back relies on it). */
  readonly lineFeedFree: boolean;
  /** Forms are searched for wrapped into lines too: one continues past a line feed that ends a line of wrapped base64 or a quoted-printable soft line break (src/redaction/wrapped.ts). */
  readonly wrapsLines: boolean;
};

const LINE_FEED = 0x0a;

export const NO_REDACTION: Redaction = {
  patterns: [],
  maxLength: 0,
  search: compilePatternSearch([]),
  valueSearch: compilePatternSearch([]),
  nameForms: [],
  lineFeedFree: true,
  wrapsLines: false,
};

/** A half-open byte range [start, end) to replace. */
export type Range = { start: number; end: number };

/**
 * What a header name can hold (RFC 9110's token; the HTTP client refuses any other answer): a form with
 * another character (the HTML escapes' `;`, the spaced hex's space) is never searched for in names, each
 * of which every response's headers are compared with.
 */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// The same list of secrets (an array the credential keeps while nothing changes) compiles once.
const compiled = new WeakMap<readonly string[], Redaction>();

/** Compiles secrets into their forms (src/redaction/forms.ts) as byte patterns, longest first, and their forms to be found wrapped into lines (base64, quoted-printable). */
export function compileRedaction(secrets: readonly string[]): Redaction {
  const cached = compiled.get(secrets);
  if (cached) return cached;
  const forms = new Set(secrets.flatMap(secretForms));
  const wide = new Map(secrets.flatMap(wideForms).map((form) => [form.toString("hex"), form]));
  const patterns = [...[...forms].map((f) => Buffer.from(f, "utf8")), ...wide.values()].sort((a, b) => b.length - a.length);
  const nameForms = [...new Set([...forms].filter((f) => HEADER_NAME.test(f)).map((f) => f.toLowerCase()))].sort((a, b) => a.length - b.length);
  const lineFeedFree = patterns.every((pattern) => !pattern.includes(LINE_FEED));
  const asBytes = (forms: string[]) => [...new Set(forms)].map((form) => Buffer.from(form, "utf8"));
  const wrapped = compileWrappedSearch(asBytes(secrets.flatMap(wrappableForms)), asBytes(secrets.flatMap(softWrappableForms)));
  const literal = compilePatternSearch(patterns);
  const search: PatternSearch = wrapped
    ? {
        find: (data, offset = 0, startsBefore = data.length) => {
          const found = literal.find(data, offset, startsBefore);
          wrapped.find(data, offset, startsBefore, found);
          return found;
        },
      }
    : literal;
  const maxLength = Math.max(patterns[0]?.length ?? 0, wrapped?.maxLength ?? 0);
  const redaction = { patterns, maxLength, search, valueSearch: literal, nameForms, lineFeedFree, wrapsLines: wrapped !== undefined };
  compiled.set(secrets, redaction);
  return redaction;
}

/**
 * A combiner of secret lists (the current credential's, and those of the credentials it replaced) that
 * returns the same array while each list is the same array, so the combination compiles once, not per call.
 */
export function secretsCombiner(): (lists: readonly (readonly string[])[]) => readonly string[] {
  let last: { lists: readonly (readonly string[])[]; combined: readonly string[] } | undefined;
  return (lists) => {
    const same = last?.lists.length === lists.length && lists.every((list, i) => list === last!.lists[i]);
    if (!same) last = { lists, combined: Object.freeze([...new Set(lists.flat())]) };
    return last!.combined;
  };
}

/**
 * Every byte range of `data` covered by some pattern, overlapping and touching ranges merged: a byte of
 * any form of any secret is redacted, even where two forms overlap.
 */
export function matchedRanges(redaction: Redaction, data: Buffer): Range[] {
  return mergeRanges(occurrences(redaction, data));
}

/** Where each pattern occurs in `data`, shifted by `offset`, unmerged; only those starting before `startsBefore`. */
export function occurrences(redaction: Redaction, data: Buffer, offset = 0, startsBefore = data.length): Range[] {
  return redaction.search.find(data, offset, startsBefore);
}

/** Ranges sorted, with overlapping and touching ones merged. */
export function mergeRanges(found: Range[]): Range[] {
  if (found.length <= 1) return found;
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Range[] = [found[0]!];
  for (const range of found.slice(1)) {
    const last = merged[merged.length - 1]!;
    if (range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push(range);
  }
  return merged;
}

/** `data` with the given ranges (sorted, disjoint) replaced by REDACTED. */
export function replaceRanges(data: Buffer, ranges: readonly Range[]): Buffer {
  if (ranges.length === 0) return data;
  return Buffer.concat(replacedParts([data], 0, data.length, ranges));
}

/**
 * Bytes [from, to) of the buffers `parts` laid end to end, with the ranges (sorted, disjoint, within
 * [from, to)) replaced by REDACTED: as slices of the buffers, never copied.
 */
export function replacedParts(parts: readonly Buffer[], from: number, to: number, ranges: readonly Range[]): Buffer[] {
  const out: Buffer[] = [];
  const take = (start: number, end: number) => {
    let base = 0;
    for (const part of parts) {
      const a = Math.max(start, base);
      const b = Math.min(end, base + part.length);
      if (a < b) out.push(part.subarray(a - base, b - base));
      base += part.length;
    }
  };
  let at = from;
  for (const { start, end } of ranges) {
    take(at, start);
    out.push(REDACTED_BYTES);
    at = end;
  }
  take(at, to);
  return out;
}

/** A whole value (a header: no line breaks) with every secret form replaced, and how many places were replaced. */
export function redactText(redaction: Redaction, text: string): { text: string; count: number } {
  if (redaction.patterns.length === 0) return { text, count: 0 };
  const data = Buffer.from(text, "utf8");
  const ranges = mergeRanges(redaction.valueSearch.find(data));
  if (ranges.length === 0) return { text, count: 0 };
  return { text: replaceRanges(data, ranges).toString("utf8"), count: ranges.length };
}

export type ResponseHeaders = Record<string, string | string[]>;

/** Whether a header name holds a secret form, in any case. */
function nameHoldsSecret(redaction: Redaction, name: string): boolean {
  const lower = name.toLowerCase();
  // Shortest first: no form longer than the name can be in it, and most names (`content-type`) are
  // shorter than every form, compared with none. Each form a secret gains would cost a comparison per
  // long header name of every response otherwise (measured: 5% of a small answer's redaction with the
  // hex forms).
  for (const form of redaction.nameForms) {
    if (form.length > lower.length) return false;
    if (lower.includes(form)) return true;
  }
  return false;
}

/**
 * Every response header value (Location, Set-Cookie, Link and all others) with its secrets replaced. A
 * header whose name holds a secret is dropped: a name cannot hold the marker, and the agent would get
 * the secret lower-cased (all of a hex key, most of any other).
 */
export function redactHeaders(redaction: Redaction, headers: ResponseHeaders): { headers: ResponseHeaders; count: number } {
  let count = 0;
  const redactOne = (value: string) => {
    const result = redactText(redaction, value);
    count += result.count;
    return result.text;
  };
  const out: ResponseHeaders = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name]!;
    if (name.length >= MIN_FORM_LENGTH && nameHoldsSecret(redaction, name)) {
      count++;
      continue;
    }
    out[name] = Array.isArray(value) ? value.map(redactOne) : redactOne(value);
  }
  return { headers: out, count };
}
