/**
 * The spellings under which a secret Keyward injected can come back in a response: as sent, percent-
 * encoded (a `Location` repeating the request URL), base64 and base64url (an echoed `Authorization:
 * Basic`, a token inside a JWT-like blob), JSON-escaped (an echo serialised as JSON), HTML-escaped (an
 * error page), quoted-printable (an e-mail body), its bytes in hex (an S3 signature error, a hex dump, a fingerprint), and as text in UTF-16 or UTF-32 (an answer in a charset the agent
 * asked for). Pure.
 */

/**
 * Forms shorter than this are not searched for: a short pattern would turn ordinary text into
 * redactions. Secrets are far longer; a credential this short is refused nowhere else, but it would be
 * guessed long before it leaked.
 */
export const MIN_FORM_LENGTH = 8;

/** Percent-encoding as encodeURIComponent does, and as SigV4 and form encoding do (`!'()*` encoded too). */
const strictPercent = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());

/** application/x-www-form-urlencoded, as URLSearchParams writes it (space as `+`). */
const formEncoded = (text: string) => new URLSearchParams({ s: text }).toString().slice(2);

/** The same escapes with lower-case hex digits: `%2f` is as valid as `%2F`. */
const lowerHex = (encoded: string) => encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());

/** `\u` and four hex digits for a UTF-16 code unit. */
const unicodeEscape = (c: string, hex: (s: string) => string = (h) => h) => "\\u" + hex(c.charCodeAt(0).toString(16).padStart(4, "0"));

/**
 * How a JSON encoder writes a string beyond JSON.stringify's escapes: the characters it writes as `\u`
 * escapes with lower-case hex digits, and those with upper-case ones (character classes; `"` among them
 * replaces its `\"`), and whether it escapes `/` as `\/`.
 */
type JsonEscaper = { lower?: string; upper?: string; slash?: boolean };

const NON_ASCII = "\\u007f-\\uffff";

/**
 * The JSON encoders in common use that write a string otherwise than JSON.stringify does (as Jackson and
 * serde_json do). Encoders that agree are one entry.
 */
const JSON_ESCAPERS: readonly JsonEscaper[] = [
  {},
  // PHP's json_encode: `/` and non-ASCII; non-ASCII alone as Python's json.dumps, and as Jackson's
  // ESCAPE_NON_ASCII does in upper case.
  { slash: true },
  { lower: NON_ASCII },
  { upper: NON_ASCII },
  { lower: NON_ASCII, slash: true },
  // Go's encoding/json and Rails' ActiveSupport, to keep JSON safe inside HTML.
  { lower: "<>&\\u2028\\u2029" },
  // Gson by default (htmlSafe): `=` and `'` too.
  { lower: "<>&='\\u2028\\u2029" },
  // Symfony's and Laravel's JsonResponse: PHP's escapes, and JSON_HEX_TAG, _AMP, _APOS, _QUOT's in upper case.
  { lower: NON_ASCII, upper: `"<>&'`, slash: true },
  // .NET's System.Text.Json by default (JavaScriptEncoder.Default): HTML-sensitive characters, `+`, the
  // backtick and non-ASCII, in upper case.
  { upper: `"&'+<>\`${NON_ASCII}` },
];

/** The text as `escaper` writes it inside a JSON string, without the quotes. */
function jsonEscapedBy(text: string, escaper: JsonEscaper): string {
  const lower = escaper.lower ? new RegExp(`[${escaper.lower}]`) : undefined;
  const upper = escaper.upper ? new RegExp(`[${escaper.upper}]`) : undefined;
  let out = "";
  // By code point: JSON.stringify writes a surrogate pair as it is, and a lone surrogate escaped.
  for (const c of text) {
    const hex = upper?.test(c) ? (h: string) => h.toUpperCase() : lower?.test(c) ? (h: string) => h : undefined;
    if (hex) for (const unit of c.split("")) out += unicodeEscape(unit, hex);
    else out += escaper.slash && c === "/" ? "\\/" : JSON.stringify(c).slice(1, -1);
  }
  return out;
}

/** The text as each common JSON encoder writes it inside a string, without the quotes. */
const jsonEscaped = (text: string): string[] => JSON_ESCAPERS.map((escaper) => jsonEscapedBy(text, escaper));

/** The escapes every HTML escaper makes, by name. */
const HTML_BASE = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

/**
 * What each common HTML escaper writes for the characters it escapes besides `&`, `<` and `>`. Escapers
 * that agree are one entry.
 */
const HTML_ESCAPERS: readonly Readonly<Record<string, string>>[] = [
  // Go's html.EscapeString and text/template, Jinja2's markupsafe, the OWASP Java Encoder.
  { '"': "&#34;", "'": "&#39;" },
  // Go's html/template, in text and quoted attributes; and in unquoted attributes.
  { '"': "&#34;", "'": "&#39;", "+": "&#43;" },
  { '"': "&#34;", "'": "&#39;", "+": "&#43;", "=": "&#61;", "`": "&#96;" },
  // Rails' ERB, lodash, escape-html (Express), Spring's HtmlUtils, .NET's HttpUtility.
  { '"': "&quot;", "'": "&#39;" },
  // Python's html.escape, Django.
  { '"': "&quot;", "'": "&#x27;" },
  // PHP's htmlspecialchars since 8.1, with ENT_HTML5, and before 8.1 (as Apache Commons' escapeHtml4).
  { '"': "&quot;", "'": "&#039;" },
  { '"': "&quot;", "'": "&apos;" },
  { '"': "&quot;" },
  // Handlebars, Underscore, Mustache.js.
  { '"': "&quot;", "'": "&#x27;", "`": "&#x60;", "=": "&#x3D;" },
  { '"': "&quot;", "'": "&#x27;", "`": "&#x60;" },
  { '"': "&quot;", "'": "&#39;", "`": "&#x60;", "=": "&#x3D;", "/": "&#x2F;" },
  // ASP.NET Core's HtmlEncoder (Razor).
  { '"': "&quot;", "'": "&#x27;", "+": "&#x2B;" },
];

/**
 * The text as each common HTML escaper writes it, and as OWASP ESAPI does (every character but letters,
 * digits and ` ,.-_` as a named entity or `&#x..;`): only the spellings that differ from the text. A
 * secret with none of these characters (most API keys) gets none, decided once when it is compiled.
 */
export function htmlEscaped(text: string): string[] {
  const forms = new Set<string>();
  for (const escaper of HTML_ESCAPERS) {
    const table: Record<string, string> = { ...HTML_BASE, ...escaper };
    forms.add(text.replace(/[&<>"'+=`/]/g, (c) => table[c] ?? c));
  }
  const named: Record<string, string> = { ...HTML_BASE, '"': "&quot;" };
  forms.add(text.replace(/[^A-Za-z0-9 ,.\-_\u0080-\uffff]/g, (c) => named[c] ?? `&#x${c.charCodeAt(0).toString(16)};`));
  forms.delete(text);
  return [...forms];
}

/**
 * The base64 characters that depend only on the secret's bytes, for each of the three alignments it
 * can have inside a longer encoded value (`user:password` encodes `password` at offset 5, so at
 * alignment 2). Characters shared with neighbouring bytes are left out: they vary with the context.
 */
export function base64Alignments(bytes: Buffer): string[] {
  const forms: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes, Buffer.alloc(2)]);
    const encoded = padded.toString("base64");
    const startBit = offset * 8;
    const endBit = startBit + bytes.length * 8;
    const first = Math.ceil(startBit / 6);
    const last = Math.floor(endBit / 6); // exclusive
    if (last > first) forms.push(encoded.slice(first, last));
  }
  return forms;
}

/**
 * The secret's bytes in hex, lower and upper case: run together, as hex dumps and debug echoes write
 * them; a space between bytes, as S3's `SignatureDoesNotMatch` error writes the request it signed
 * (`<CanonicalRequestBytes>47 45 54 0a ...</CanonicalRequestBytes>`); a colon, as OpenSSL writes a
 * fingerprint and Python's `bytes.hex(":")` does; a dash, as .NET's `BitConverter.ToString` does. Bytes,
 * not characters: hex sits on byte boundaries, so there is no alignment to allow for as in base64.
 */
export function hexForms(bytes: Buffer): string[] {
  const lower = bytes.toString("hex");
  const separated = [" ", ":", "-"].map((separator) => lower.replace(/(..)(?!$)/g, `$1${separator}`));
  return [lower, ...separated].flatMap((form) => [form, form.toUpperCase()]);
}

const toBase64Url = (standard: string) => standard.replace(/\+/g, "-").replace(/\//g, "_");

/** Every form of one secret worth searching for, each at least MIN_FORM_LENGTH bytes long, without duplicates. */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>();
  const add = (form: string) => {
    if (Buffer.byteLength(form) >= MIN_FORM_LENGTH) forms.add(form);
  };
  for (const encoded of [secret, strictPercent(secret), encodeURIComponent(secret), formEncoded(secret)]) {
    add(encoded);
    add(lowerHex(encoded));
  }
  for (const escaped of jsonEscaped(secret)) add(escaped);
  for (const escaped of htmlEscaped(secret)) {
    add(escaped);
    // HTML returned inside a JSON string: encoders that escape `&` (Go's, Gson, Symfony's, .NET's) write
    // each HTML escape otherwise (`\u0026amp;`). The rest are the HTML form itself, kept once.
    for (const json of jsonEscaped(escaped)) add(json);
  }
  // An echoed e-mail body: differs from the secret only for one holding `=` or bytes past ASCII.
  add(quotedPrintable(secret));
  for (const standard of base64Alignments(Buffer.from(secret, "utf8"))) {
    add(standard);
    // An echoed `Authorization: Basic` on an HTML page: Go's html/template escapes `+` too.
    for (const escaped of htmlEscaped(standard)) add(escaped);
    add(toBase64Url(standard));
    // Base64 inside a JSON string, by encoders that escape `/` (PHP's) or `+` (.NET's System.Text.Json);
    // and inside a URL, percent-encoded.
    add(standard.replace(/\//g, "\\/"));
    add(standard.replace(/\+/g, "\\u002B"));
    add(strictPercent(standard));
  }
  // Only for a secret long enough to be searched for itself: a short one's hex is long enough, but no less a guess.
  if (Buffer.byteLength(secret) >= MIN_FORM_LENGTH) for (const hex of hexForms(Buffer.from(secret, "utf8"))) add(hex);
  return [...forms];
}

/**
 * Quoted-printable (RFC 2045 §6.7), as an e-mail body is encoded: `=`, control characters and bytes past
 * ASCII as `=` and two upper-case hex digits; the rest as it is.
 */
export const quotedPrintable = (text: string): string =>
  [...Buffer.from(text, "utf8")].map((b) => ((b >= 0x20 && b < 0x7f && b !== 0x3d) || b === 0x09 ? String.fromCharCode(b) : "=" + b.toString(16).toUpperCase().padStart(2, "0"))).join("");

/** The forms to search for across quoted-printable soft line breaks (src/redaction/wrapped.ts): the secret as sent, and quoted-printable. */
export function softWrappableForms(secret: string): string[] {
  if (Buffer.byteLength(secret) < MIN_FORM_LENGTH) return [];
  return [...new Set([secret, quotedPrintable(secret)])];
}

/** The base64 forms to search for wrapped into lines too (MIME, PEM: src/redaction/wrapped.ts). */
export function wrappableForms(secret: string): string[] {
  return base64Alignments(Buffer.from(secret, "utf8")).filter((form) => form.length >= MIN_FORM_LENGTH);
}

/** Text in UTF-16 or UTF-32, big- or little-endian. */
function wideEncoded(text: string, unitBytes: 2 | 4, bigEndian: boolean): Buffer {
  if (unitBytes === 2) {
    const littleEndian = Buffer.from(text, "utf16le");
    return bigEndian ? littleEndian.swap16() : littleEndian;
  }
  const points = Array.from(text, (c) => c.codePointAt(0)!);
  const out = Buffer.alloc(points.length * 4);
  points.forEach((point, i) => (bigEndian ? out.writeUInt32BE(point, i * 4) : out.writeUInt32LE(point, i * 4)));
  return out;
}

/**
 * The secret, as sent and JSON-escaped, in the charsets besides UTF-8 an answer can be asked for: Jackson
 * (Spring's JSON converter) writes UTF-16 and UTF-32 of either byte order when the request's `Accept`
 * names one (`application/json;charset=UTF-16BE`), so an agent can have an echo sent that way. Byte
 * patterns, not text: they are no UTF-8. Only for a secret whose UTF-8 form is searched for at all.
 */
export function wideForms(secret: string): Buffer[] {
  if (Buffer.byteLength(secret) < MIN_FORM_LENGTH) return [];
  const texts = new Set([secret, JSON.stringify(secret).slice(1, -1)]);
  const forms: Buffer[] = [];
  for (const text of texts) for (const unit of [2, 4] as const) for (const bigEndian of [false, true]) forms.push(wideEncoded(text, unit, bigEndian));
  return forms;
}
