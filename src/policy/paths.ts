/**
 * Path handling for the decision and for forwarding. The path Keyward decides on is exactly the path it
 * forwards, so an upstream can never see a different resource than the one the policy allowed.
 */

export type NormalisedPath = {
  /** Decoded segments, e.g. ["v1", "projects", "a b"]. */
  segments: string[];
  /** "/" + decoded segments joined with "/": what patterns match against. */
  decoded: string;
  /** The same path percent-encoded canonically: what is forwarded. */
  encoded: string;
};

export type PathResult = { ok: true; path: NormalisedPath } | { ok: false; reason: string };

// RFC 3986 pchar without "%" and ";": these may appear unencoded in a forwarded path segment. ";" is
// always sent as %3B: servers such as Tomcat, Jetty and Spring cut a raw ";..." (path parameters) off a
// segment, so "/admin;x" would be decided as the literal segment "admin;x" yet served as "/admin".
const SEGMENT_SAFE = /[A-Za-z0-9\-._~!$&'()*+,=:@]/;

function encodeSegment(segment: string): string {
  let out = "";
  for (const ch of segment) {
    if (SEGMENT_SAFE.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, "utf8")) out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

// What a path means to a server is carried by these characters: a segment may not gain or lose any of
// them when an upstream normalises Unicode.
const DELIMITERS = /[./\\%;?#]/g;
// Look-alikes that NFKC leaves alone but Windows "best fit" mappings (IIS, ANSI code pages) and some
// confusable-folding servers turn into "/", "\" or ".": division slash, fraction slash, big solidus,
// box-drawing diagonals, set minus, reverse solidus operator, big reverse solidus; and the ideographic
// full stops that IDNA (UTS #46) maps to ".".
const BEST_FIT_LOOKALIKES = /[\u2215\u2044\u29f8\u2571\u2572\u2216\u29f5\u29f9\u3002\uff61\ufe12]/;

/**
 * A segment an upstream could read with different delimiters than Keyward did: its NFKC form (what
 * servers that normalise Unicode see; `．．` U+FF0E, `‥` U+2025, `﹒` U+FE52, `／` U+FF0F, `％`, `；`, `？`
 * all become ASCII) has other dots, slashes or delimiters than the segment itself, or it holds a
 * character a best-fit mapping turns into one.
 */
function looksLikeSeparator(segment: string): boolean {
  if (/^[\x20-\x7e]*$/.test(segment)) return false; // ASCII: nothing to normalise
  if (BEST_FIT_LOOKALIKES.test(segment)) return true;
  const delimiters = (text: string) => (text.match(DELIMITERS) ?? []).join("");
  return delimiters(segment.normalize("NFKC")) !== delimiters(segment);
}

/**
 * A decoded segment decoded again, as a server that decodes twice (or three times) reads it: escapes
 * of any byte, UTF-8 where the bytes are valid UTF-8. Invalid escapes stay as they are.
 */
function decodedFurther(segment: string): string {
  let current = segment;
  for (let i = 0; i < 3 && /%[0-9A-Fa-f]{2}/.test(current); i++) {
    const bytes = current.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    const utf8 = Buffer.from(bytes, "latin1").toString("utf8");
    current = utf8.includes("\ufffd") ? bytes : utf8;
  }
  return current;
}

/**
 * What servers strip from either end of a segment, so that `<it>admin` and `admin<it>` reach `admin`:
 * spaces (trim() and strip() cut both ends), any Unicode space (trim() and strip() take U+00A0, U+2002 or
 * U+3000 as spaces; NFKC or a best-fit mapping makes them ASCII spaces first), and the invisible
 * characters sanitisers remove or Unicode once counted as spaces: zero-width space, non-joiner and joiner,
 * word joiner, byte order mark (trim() strips it), Mongolian vowel separator (a space before Unicode 6.3).
 */
const STRIPPED = "[\\p{White_Space}\\u200b-\\u200d\\u2060\\ufeff\\u180e]";
// Dots too at the end, as Windows/IIS strip them; a leading dot is kept by every server (`.well-known`).
const STRIPPED_AT_END = new RegExp(`(?:\\.|${STRIPPED})$`, "u");
const STRIPPED_AT_START = new RegExp(`^${STRIPPED}`, "u");

/** A path of RFC 3986 pchar without "%" and ";", and "/": nothing to decode, and every segment SEGMENT_SAFE. */
const PLAIN_PATH = /^[A-Za-z0-9\-._~!$&'()*+,=:@/]*$/;

/** A raw segment decoded, or the refusal of a segment that servers could read otherwise than Keyward. */
function decodedSegment(rawSegment: string): string | { ok: false; reason: string } {
  if (/%2f|%5c/i.test(rawSegment)) return { ok: false, reason: "encoded slash in path" };
  let segment: string;
  try {
    // decodeURIComponent rejects invalid and overlong UTF-8 sequences.
    segment = decodeURIComponent(rawSegment);
  } catch {
    return { ok: false, reason: "invalid percent-encoding in path" };
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(segment)) return { ok: false, reason: "control character in path" };
  if (looksLikeSeparator(segment)) return { ok: false, reason: "Unicode look-alike of a dot, slash or other delimiter in path" };
  // Decoded once, the segment is what Keyward decides on and forwards (re-encoded); an upstream that
  // decodes again must not find a path structure in it that Keyward did not see.
  const deeper = decodedFurther(segment);
  if (deeper !== segment) {
    if (/^\.\.?$|[/\\;?#]/.test(deeper) || STRIPPED_AT_START.test(deeper) || STRIPPED_AT_END.test(deeper)) return { ok: false, reason: "double-encoded delimiter or dot segment in path" };
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f-\u009f]/.test(deeper)) return { ok: false, reason: "control character in path" };
    if (looksLikeSeparator(deeper)) return { ok: false, reason: "Unicode look-alike of a dot, slash or other delimiter in path" };
  }
  return segment;
}

/**
 * Normalises the raw request path (no query string). Anything ambiguous is refused rather than guessed:
 * encoded slashes or backslashes (servers disagree on them), control characters and NUL, invalid or
 * overlong UTF-8, segments ending in ".", a space or an invisible character or starting with a space or an
 * invisible character (some servers strip them), and ".." that would leave the base.
 */
export function normalisePath(raw: string): PathResult {
  if (!raw.startsWith("/")) return { ok: false, reason: "path must start with /" };
  if (raw.includes("\\")) return { ok: false, reason: "backslash in path" };
  // Nearly every path is plain: nothing in it to decode, refuse as ambiguous or encode, so each segment is
  // decided on and forwarded as it is (the checks below would all pass, and encoding would change nothing).
  const plain = PLAIN_PATH.test(raw);
  const segments: string[] = [];
  for (const rawSegment of raw.split("/")) {
    const segment = plain ? rawSegment : decodedSegment(rawSegment);
    if (typeof segment !== "string") return segment;
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (segments.length === 0) return { ok: false, reason: "path escapes the upstream base" };
      segments.pop();
      continue;
    }
    // A plain segment holds no space and nothing beyond ASCII: of what servers strip, only a dot can end it.
    if (plain ? segment.endsWith(".") : STRIPPED_AT_END.test(segment)) return { ok: false, reason: "path segment ends with a dot, a space or an invisible character" };
    if (!plain && STRIPPED_AT_START.test(segment)) return { ok: false, reason: "path segment starts with a space or an invisible character" };
    segments.push(segment);
  }
  const trailingSlash = raw.length > 1 && raw.endsWith("/") && segments.length > 0 ? "/" : "";
  const decoded = "/" + segments.join("/") + trailingSlash;
  return { ok: true, path: { segments, decoded, encoded: plain ? decoded : "/" + segments.map(encodeSegment).join("/") + trailingSlash } };
}

/**
 * Path patterns: literal segments, `*` or `{name}` for exactly one segment, `**` for any number of
 * segments (including none). Patterns are validated when a grant is written (see isValidPathPattern).
 */
export function isValidPathPattern(pattern: string): boolean {
  if (!pattern.startsWith("/") || pattern.length > 512) return false;
  // No control character either: no path the proxy forwards holds one, so such a pattern matches nothing,
  // and can only erase or rewrite what a human reads of it (a held token request's paths: REQ-79).
  // eslint-disable-next-line no-control-regex
  if (/[\s\\?#%\u0000-\u001f\u007f-\u009f]/.test(pattern)) return false;
  return pattern
    .split("/")
    .slice(1)
    .every((seg, i, all) => {
      if (seg === "") return i === all.length - 1; // only a trailing slash may be empty
      if (seg === "." || seg === "..") return false;
      if (seg === "*" || seg === "**" || /^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(seg)) return true;
      return !/[*{}]/.test(seg);
    });
}

/**
 * The pattern with each named placeholder as the `*` it means. A token's paths are the agent's words, read
 * by the human who approves the token: `/v1/{logs}/**` reads as "the logs" and matches `/v1/volumes/**`.
 */
export const withoutPlaceholderNames = (pattern: string): string =>
  pattern.includes("{") ? pattern.split("/").map((seg) => (seg.startsWith("{") ? "*" : seg)).join("/") : pattern;

/** A pattern segment; a literal also as foldSegment reads it, for the rules that match folded paths. */
type Token = { kind: "literal"; value: string; folded: string } | { kind: "one" } | { kind: "any" };

function tokenize(pattern: string): Token[] {
  return pattern
    .split("/")
    .filter((s) => s !== "")
    .map((seg): Token => {
      if (seg === "**") return { kind: "any" };
      if (seg === "*" || seg.startsWith("{")) return { kind: "one" };
      return { kind: "literal", value: seg, folded: foldSegment(seg) };
    });
}

/**
 * Patterns come from grants and from the tokens issued under them, a bounded set: each is tokenized the
 * first time a call is matched against it, not on every call. Past the cap (patterns of grants long
 * deleted), the memo starts over.
 */
const TOKENIZED_MAX = 10_000;
const tokenized = new Map<string, readonly Token[]>();

function tokensOf(pattern: string): readonly Token[] {
  let tokens = tokenized.get(pattern);
  if (tokens === undefined) {
    if (tokenized.size >= TOKENIZED_MAX) tokenized.clear();
    tokens = tokenize(pattern);
    tokenized.set(pattern, tokens);
  }
  return tokens;
}

/**
 * Whether `pattern` matches all of `items`, where `**` matches any run of items (none included) and
 * every other token exactly one item, as `matchesOne` says. Greedy, going back only to the last `**`
 * passed: the tokens between two `**` are placed at the first items they fit, since placing them
 * further on only leaves fewer items for what follows, and the `**` after them absorbs whatever the
 * first placement leaves over. So no more than items × tokens steps, whatever the pattern (the patterns
 * agents choose for their tokens included): trying every way of spreading the items over
 * the `**` instead takes time exponential in their number.
 */
function matchTokens<T>(pattern: readonly Token[], items: readonly T[], matchesOne: (token: Token, item: T) => boolean): boolean {
  let p = 0;
  let s = 0;
  let lastAny = -1; // the last `**` passed, and where the run it absorbs ends
  let absorbedTo = 0;
  while (s < items.length) {
    const token = pattern[p];
    if (token?.kind === "any") {
      lastAny = p++;
      absorbedTo = s;
    } else if (token !== undefined && matchesOne(token, items[s]!)) {
      p++;
      s++;
    } else if (lastAny === -1) {
      return false;
    } else {
      p = lastAny + 1;
      s = ++absorbedTo;
    }
  }
  while (pattern[p]?.kind === "any") p++;
  return p === pattern.length;
}

const matchesSegment = (token: Token, segment: string) => token.kind !== "literal" || token.value === segment;
const matchesFoldedSegment = (token: Token, segment: string) => token.kind !== "literal" || token.folded === segment;

const PLAIN_SEGMENT = /^[\x20-\x24\x26-\x7e]*$/;
// Escapes of unreserved characters, and of a "%" that starts another escape: what decoding once more
// turns into a character a rule names, or into such an escape.
const REDECODED_ESCAPE = /%(2[dD]|2[eE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE]|25(?=[0-9A-Fa-f]{2}))/g;

/**
 * A segment as a lenient upstream could read it: percent-escapes of unreserved characters decoded (a
 * segment Keyward decoded once may hold `%41` that a server decoding twice reads as `A`, or `%2541` that
 * one decoding three times does), Unicode compatibility forms folded (NFKC: `ａｄｍｉｎ` is `admin`), and
 * case folded the ways servers fold it (upper then lower, so `ı` and `ſ` meet `i` and `s` as .NET's
 * invariant culture has it; a combining dot above dropped, so `İ` meets `i`), and path parameters cut
 * off (`admin;x` is `admin`).
 */
export function foldSegment(segment: string): string {
  // Printable ASCII without an escape (nearly every segment): NFKC leaves it as it is, and upper then
  // lower case is lower case. The same result as below, without normalising (a property test holds it).
  if (PLAIN_SEGMENT.test(segment)) {
    const lower = segment.toLowerCase();
    const parameters = lower.indexOf(";");
    return parameters === -1 ? lower : lower.slice(0, parameters);
  }
  let current = segment;
  for (let i = 0; i < 4 && current.includes("%"); i++) {
    const next = current.replace(REDECODED_ESCAPE, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (next === current) break;
    current = next;
  }
  // Servers such as Spring cut ";..." (path parameters) off a segment after decoding it: "admin;x" is "admin".
  return current.normalize("NFKC").toUpperCase().toLowerCase().replace(/\u0307/g, "").split(";", 1)[0]!;
}

/** Whether a granting pattern (allowed `paths`) matches: exactly, segment by decoded segment. */
export function pathMatches(pattern: string, path: NormalisedPath): boolean {
  return segmentsMatch(pattern, path.segments);
}

/** The same match on decoded segments, e.g. an upstream's base path followed by the request's path. */
export function segmentsMatch(pattern: string, segments: readonly string[]): boolean {
  return matchTokens(tokensOf(pattern), segments, matchesSegment);
}

/**
 * Whether a rule that takes something away (deny, `requiresApprovalFor`, `destructive`, protected
 * operations) matches: on segments folded by foldSegment (the caller folds them once per call), so that a change of case or encoding an
 * upstream ignores does not walk around it. Granting rules stay exact: doubt falls on refusing.
 */
export function foldedSegmentsMatch(pattern: string, foldedSegments: readonly string[]): boolean {
  return matchTokens(tokensOf(pattern), foldedSegments, matchesFoldedSegment);
}

/**
 * True when every path `inner` matches is also matched by `outer` (used to refuse widening): outer
 * matches inner's tokens as it matches segments, its `**` absorbing any of them (`**` included), its
 * other tokens standing for one token of inner that only ever matches what they match.
 */
export function patternCovers(outer: string, inner: string): boolean {
  return matchTokens(tokensOf(outer), tokensOf(inner), coversToken);
}

function coversToken(outer: Token, inner: Token): boolean {
  if (inner.kind === "any") return false;
  return outer.kind !== "literal" || (inner.kind === "literal" && inner.value === outer.value);
}
