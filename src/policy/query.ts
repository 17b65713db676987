import { globMatches } from "./glob.js";

/** A query string's parameters by lower-cased, decoded name, with every decoded value (`?a` has value ""). */
export type QueryParams = ReadonlyMap<string, readonly string[]>;

/**
 * Parses a query string as servers do (form decoding: `+` is a space, percent-escapes decoded), once and
 * strictly: the reading of an upstream that follows the standard, such as S3 (src/policy/s3.ts).
 * Names are lower-cased: rules matching on them must not be escaped by `?Delete` or `?%64elete`.
 */
export function parseQuery(query: string): QueryParams {
  return strictParams(query);
}

function strictParams(query: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(query)) add(params, name.toLowerCase(), value);
  return params;
}

function add(params: Map<string, string[]>, name: string, value: string): void {
  const values = params.get(name);
  if (values) values.push(value);
  else params.set(name, [value]);
}

/** Parameter separators: `&`, and `;` as some servers split on it too (Rack 2, Python < 3.9.2, Go < 1.17, Tomcat). */
export const PARAM_SEPARATORS = /[&;]/;

const MAX_DECODES = 4;

/** Percent-decodes until stable (a few rounds): an upstream may decode more than once. Invalid escapes stay. */
export function decodeRepeatedly(text: string): string {
  let current = text;
  for (let i = 0; i < MAX_DECODES && current.includes("%"); i++) {
    const next = current.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    // Percent-escaped UTF-8 arrives as Latin-1 code units here; read it as UTF-8 where it is valid.
    const asUtf8 = Buffer.from(next, "latin1").toString("utf8");
    const decoded = /[\u0080-\u00ff]/.test(next) && !asUtf8.includes("\ufffd") ? asUtf8 : next;
    if (decoded === current) break;
    current = decoded;
  }
  return current;
}

/** A lower-case name no rewriting in nameReadings changes. */
export const CANONICAL_NAME = /^[a-z0-9_]*$/;

/**
 * Every name a parameter name (already percent-decoded) could be read as by some framework, lower-case:
 * - case (names are matched case-insensitively) and Unicode compatibility forms (NFKC: `ｆorce`);
 * - a NUL cutting a name short (C-string handling);
 * - leading `?`s dropped (URLSearchParams drops one from a query that starts with `?`);
 * - PHP's mangling: leading spaces dropped, `name[...]` is the array `name`, and `.`, spaces and `[`
 *   become `_` (`dry.run` is `dry_run`); and surrounding spaces trimmed.
 * The name itself is always one of them.
 */
export function nameReadings(decodedName: string): string[] {
  const lower = decodedName.toLowerCase();
  if (CANONICAL_NAME.test(lower)) return [lower];
  const base = decodedName.normalize("NFKC").toLowerCase();
  const forms = new Set<string>([lower, base]);
  const nul = base.indexOf("\u0000");
  if (nul !== -1) forms.add(base.slice(0, nul));
  for (const form of [...forms]) forms.add(form.replace(/^\?+/, ""));
  for (const form of [...forms]) {
    forms.add(form.trimStart());
    // PHP: `name[...]` (a matched bracket) is the array `name`.
    const bracket = form.indexOf("[");
    if (bracket !== -1 && form.indexOf("]", bracket) !== -1) forms.add(form.slice(0, bracket));
  }
  for (const form of [...forms]) {
    const trimmed = form.trim();
    forms.add(trimmed);
    forms.add(form.replace(/[\s.[]/g, "_"));
    forms.add(trimmed.replace(/[\s.[]/g, "_"));
  }
  return [...forms];
}

/** A value every reading leaves as it is: no escapes, no `+`, nothing outside printable ASCII. */
const PLAIN_VALUE = /^[!-$&-*,-~]*$/;

/** The values a raw (still encoded) value could be read as: decoded more than once, NFKC, cut at a NUL. */
function valueReadings(rawValue: string): string[] {
  if (PLAIN_VALUE.test(rawValue)) return [rawValue];
  const decoded = decodeRepeatedly(rawValue.replace(/\+/g, " "));
  const forms = new Set<string>([decoded, decoded.normalize("NFKC")]);
  for (const form of [...forms]) {
    const nul = form.indexOf("\u0000");
    if (nul !== -1) forms.add(form.slice(0, nul));
  }
  return [...forms];
}

/** A query no lenient reading reads otherwise than parseQuery: no `%`, `+`, `;`, `.`, `[`, `?` or space, only ASCII. */
const READ_ALIKE = /^[\w=&,:/@!$'()*~-]*$/;

/**
 * A query as any server might read it, for rules that take something away (deny, requiresApprovalFor,
 * destructive, preset protection): the strict reading (parseQuery), and besides it every parameter split
 * on `;` too, its name under every nameReadings form and repeatedly decoded, its value repeatedly decoded
 * and in NFKC. So `a=1;force=1`, `force[]=1`, `%2566orce=1`, `ｆorce=1` all carry `force`, and `dry.run`
 * is `dry_run`. It only ever adds readings: a rule matches at least where it would on the strict one.
 */
export function readQueryLeniently(query: string): QueryParams {
  const params = strictParams(query);
  if (READ_ALIKE.test(query)) return params;
  for (const pair of query.split(PARAM_SEPARATORS)) {
    const equals = pair.indexOf("=");
    const rawName = equals === -1 ? pair : pair.slice(0, equals);
    const values = valueReadings(equals === -1 ? "" : pair.slice(equals + 1));
    for (const name of nameReadings(decodeRepeatedly(rawName.replace(/\+/g, " ")))) {
      for (const value of values) add(params, name, value);
    }
  }
  return params;
}

type RuleQuery = Readonly<Record<string, string>>;

/** Each rule's parameters as nameReadings' canonical names, compiled once per rule (grants are cached, presets static). */
const compiledRules = new WeakMap<RuleQuery, readonly (readonly [name: string, glob: string])[]>();

function compiledRule(rule: RuleQuery) {
  let compiled = compiledRules.get(rule);
  if (!compiled) {
    compiled = Object.entries(rule).map(([name, glob]) => [name.normalize("NFKC").toLowerCase(), glob] as const);
    compiledRules.set(rule, compiled);
  }
  return compiled;
}

/**
 * Whether every parameter a rule names is present with a value its glob matches: `"*"` matches any
 * value, including none (`?delete`); otherwise `*` stands for any run of characters. Names match in any case.
 */
export function queryMatches(rule: RuleQuery, query: QueryParams): boolean {
  return compiledRule(rule).every(([name, glob]) => {
    const values = query.get(name);
    return values !== undefined && (glob === "*" || values.some((value) => globMatches(glob, value)));
  });
}
