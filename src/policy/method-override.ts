import { isPlainObject, singleHeader, uncompressed, type CallContent, type Headers } from "./content.js";
import { CANONICAL_NAME, decodeRepeatedly, nameReadings, PARAM_SEPARATORS } from "./query.js";

/**
 * Method override through parameters. Many server frameworks let a POST act as another method when it
 * carries a parameter naming one: Rails and Spring read `_method` from a form body, Laravel and Symfony
 * from the query string or the body (Laravel's body is the JSON one for a JSON request), ASP.NET
 * `X-HTTP-Method-Override` from a form field or the query, and Express's `method-override` whatever name
 * the application picked. A POST the policy allowed could then
 * run as a DELETE a deny rule refuses. So a parameter is refused when its name could reach any of these
 * frameworks as an override name, after every rewriting they apply to names: percent-decoding (repeated,
 * for servers that decode twice), `+` as a space, and every reading of src/policy/query.ts nameReadings
 * (PHP's mangling and arrays, case, NFKC, a NUL, a leading `?`); `-` and `_` alike, as in headers.
 * The value does not matter: `_method=POST` is refused too, since nothing legitimate needs it.
 */

/** Override names, canonical: lower case, with every separator (`-`, `.`, space, `[`) as `_`. */
const OVERRIDE_NAMES = new Set(["_method", "x_http_method_override", "x_http_method", "x_method_override", "x_original_method"]);

/** Turns the separators header-style names use (`-`, `.`, space, `[`, `]`) into `_`, as in OVERRIDE_NAMES. */
const canonical = (reading: string) => reading.replace(/[\s.[\]-]/g, "_");

/** Whether a parameter name (as sent, still percent-encoded when `encoded`) is a method-override name anywhere. */
export function isMethodOverrideName(name: string, encoded = true): boolean {
  const decoded = encoded ? decodeRepeatedly(name.replace(/\+/g, " ")) : decodeRepeatedly(name);
  // Lower-case letters, digits and `_` (most names, e.g. `expand`): every reading is the name itself.
  if (CANONICAL_NAME.test(decoded)) return OVERRIDE_NAMES.has(decoded);
  return nameReadings(decoded).some((reading) => OVERRIDE_NAMES.has(canonical(reading)));
}

/** The names in URL-encoded parameters, split as lenient servers split them (`;` too). */
const encodedParamNames = (text: string) => text.split(PARAM_SEPARATORS).map((pair) => pair.split("=", 1)[0]!);

/** The first query parameter whose name is a method-override name, or null. */
export function methodOverrideInQuery(query: string): string | null {
  if (query === "") return null;
  return encodedParamNames(query).find((name) => isMethodOverrideName(name)) ?? null;
}

/** How a POST body may carry form fields a framework reads: URL-encoded, multipart, JSON, or refused as unreadable. */
export type FormBody = "urlencoded" | "multipart" | "json" | "ambiguous";

/** Laravel's Request::isJson(): a Content-Type holding `/json` or `+json` anywhere, parameters included. */
const JSON_CONTENT_TYPE = /[/+]json/i;

/**
 * Whether a call's body may carry form fields that some framework reads as an override. Only a POST
 * is overridden. Rack reads a POST without a Content-Type as a URL-encoded form, and any `multipart/*`
 * as multipart, so those count too; Laravel reads its fields from a JSON body (any Content-Type
 * Request::isJson() takes for JSON), whose top-level members Symfony's getMethod() then reads `_method`
 * from. The media type ends where PHP's SAPI ends it (at the first `;`, `,` or space: PHP then fills
 * `$_POST`, which `$_REQUEST` merges with the query) and Rack's (`;` or `,`). A list whose first type is
 * no form but a later one is (read as the first by those, perhaps as the later elsewhere), a repeated
 * Content-Type, or a charset in which ASCII names are not ASCII bytes (UTF-16, UTF-32, UTF-7), is
 * ambiguous: refused when it matters.
 */
export function formBodyOf(method: string, headers: Headers): FormBody | null {
  if (method !== "POST") return null;
  const header = singleHeader(headers, "content-type");
  if (!header.ok) return "ambiguous";
  const value = (header.value ?? "").toLowerCase();
  const semicolon = value.indexOf(";");
  const mediaType = (semicolon === -1 ? value : value.slice(0, semicolon)).trim();
  const end = mediaType.search(/[\s,]/);
  const kind = formTypeOf(end === -1 ? mediaType : mediaType.slice(0, end)) ?? (JSON_CONTENT_TYPE.test(value) ? "json" : null);
  if (kind === null) return end !== -1 && mediaType.slice(end).split(/[\s,]+/).some((t) => t !== "" && formTypeOf(t) !== null) ? "ambiguous" : null;
  return semicolon !== -1 && UNREADABLE_CHARSET.test(value.slice(semicolon)) ? "ambiguous" : kind;
}

/** A charset parameter in which ASCII names are not ASCII bytes. */
const UNREADABLE_CHARSET = /;\s*charset\s*=\s*"?(?:utf-?(?:7|16|32)|ucs|unicode)/;

/** The form a media type (lower case, without parameters) names, if any: none names a URL-encoded one to Rack. */
const formTypeOf = (type: string): "urlencoded" | "multipart" | null =>
  type === "" || type === "application/x-www-form-urlencoded" ? "urlencoded" : type.startsWith("multipart/") ? "multipart" : null;

/** A method an override could turn a POST into. */
const OVERRIDABLE = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

type RuleLike = { method?: string };
type GrantLike = {
  methods: readonly string[];
  deny: readonly RuleLike[];
  requiresApprovalFor: readonly RuleLike[];
  destructive: readonly RuleLike[];
};

/**
 * Whether an override in a form body could change what the policy decided: when the token or grant
 * does not allow some method a POST could become, or a rule (deny, approval, destructive) singles out a
 * method other than POST. Only then is a form POST's body read for one (within the inspection limit).
 */
export function formOverrideMatters(token: { methods: readonly string[] }, grant: GrantLike): boolean {
  if (OVERRIDABLE.some((m) => !token.methods.includes(m) || !grant.methods.includes(m))) return true;
  return [...grant.deny, ...grant.requiresApprovalFor, ...grant.destructive].some((rule) => rule.method !== undefined && rule.method !== "POST");
}

/** Whether the proxy must read this call's body to look for a form override. */
export function formOverrideInspected(method: string, headers: Headers, token: { methods: readonly string[] }, grant: GrantLike): boolean {
  return formBodyOf(method, headers) !== null && formOverrideMatters(token, grant);
}

// Every `name=` (or RFC 7578/2231 `name*=`) parameter in the body, wherever it is: a lenient multipart
// parser may find parts a strict one does not, so nothing depends on parsing the parts the same way.
// Linear on any body: no two quantifiers can share a character (the whitespace after `*` is only tried
// once a `*` was seen), so a name followed by a long run of spaces costs one pass, not one per space.
const MULTIPART_NAME = /\bname\s*(?:(\*)\s*)?=\s*(?:"((?:[^"\\\r\n]|\\.)*)"|([^\s;"]+))/gi;

/** The first form field in the body whose name is a method-override name, or null. */
export function methodOverrideInForm(kind: Exclude<FormBody, "ambiguous">, body: Uint8Array): string | null {
  // Names are ASCII; Latin-1 reads any bytes without failing and keeps percent-escapes as they are.
  if (kind === "json") return methodOverrideInJson(body);
  const text = Buffer.from(body).toString("latin1");
  if (kind === "urlencoded") return encodedParamNames(text).find((name) => isMethodOverrideName(name)) ?? null;
  for (const match of text.matchAll(MULTIPART_NAME)) {
    const [, extended, quoted, bare] = match;
    let name = quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : bare!;
    // RFC 2231: charset'language'percent-encoded value.
    if (extended) name = name.replace(/^[^']*'[^']*'/, "");
    // Names are UTF-8 bytes read as Latin-1 here; some parsers percent-decode them too.
    const utf8 = Buffer.from(name, "latin1").toString("utf8");
    if (isMethodOverrideName(name, true) || isMethodOverrideName(utf8, true)) return name;
  }
  return null;
}

/**
 * The first top-level member of a JSON object body whose name is a method-override name, or null. A body
 * that is no JSON object gives Laravel no fields (json_decode fails as JSON.parse does), so none.
 */
function methodOverrideInJson(body: Uint8Array): string | null {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    return null;
  }
  return isPlainObject(value) ? (Object.keys(value).find((name) => isMethodOverrideName(name, false)) ?? null) : null;
}

export type OverrideRefusal = { code: "method_override"; reason: string };

const refusal = (where: string, name: string): OverrideRefusal => ({
  code: "method_override",
  reason: `${where} parameter ${JSON.stringify(name.slice(0, 100))} could override the method`,
});

/**
 * Refuses a call that could run as a method other than the one decided on. The query is always
 * checked; a form POST's body when formOverrideInspected says so (decide() refuses a form POST whose
 * body it needed and was not given, or cannot read: an ambiguous Content-Type, any Content-Encoding).
 */
export function refuseMethodOverride(call: CallContent, token: { methods: readonly string[] }, grant: GrantLike): OverrideRefusal | null {
  const inQuery = methodOverrideInQuery(call.query);
  if (inQuery !== null) return refusal("query", inQuery);
  if (!formOverrideInspected(call.method, call.headers, token, grant)) return null;
  const kind = formBodyOf(call.method, call.headers)!;
  if (kind === "ambiguous") {
    return { code: "method_override", reason: "a form body with an ambiguous Content-Type cannot be checked for a method override" };
  }
  // Express's body-parser inflates a gzip or deflate form before method-override reads it: the scan
  // must see the fields the upstream will, so a compressed form is refused as GraphQL and JSON-RPC are.
  const plain = uncompressed(call.headers);
  if (!plain.ok) return { code: "method_override", reason: `the form body cannot be checked for a method override: ${plain.reason}` };
  if (call.body === undefined) return { code: "method_override", reason: "a form body that could override the method was not inspected" };
  const inBody = methodOverrideInForm(kind, call.body);
  return inBody === null ? null : refusal(kind === "json" ? "JSON" : "form", inBody);
}
