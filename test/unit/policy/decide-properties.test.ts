import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide, HTTP_METHODS, type GrantPolicy, type HttpMethod, type HttpRule, type TargetPolicy, type TokenCapabilities } from "../../../src/policy/decide.js";
import { normalisePath } from "../../../src/policy/paths.js";

/**
 * REQ-30: decide() against random calls and random grants, with an oracle written apart from the code
 * under test: how a lenient upstream could read the call (decoding more than once, NFKC, best-fit
 * look-alikes, backslashes, path parameters, dot segments, trailing dots, any case, method overrides in
 * the query or a form body; query parameter names split on `;` too, decoded more than once, NFKC, PHP
 * arrays and name mangling). Two invariants hold for every call decide() allows:
 * 1. no deny rule matches it under any of those readings, for any method it could run as;
 * 2. every method it could run as is granted, and every reading stays inside the granted paths.
 * Seeded: the suite runs a few thousand cases in seconds; `npm run test:properties` runs many more
 * (KEYWARD_PROPERTY_RUNS, KEYWARD_PROPERTY_SEED).
 */

const RUNS = Number(process.env.KEYWARD_PROPERTY_RUNS ?? 2000);
const SEED = Number(process.env.KEYWARD_PROPERTY_SEED ?? 20261206);

// ---- the oracle: a lenient upstream's readings of a raw path --------------------------------------

const BEST_FIT: Record<string, string> = {
  "\u2215": "/", "\u2044": "/", "\u29f8": "/", "\u2571": "/", "\u2572": "\\", "\u2216": "\\", "\u29f5": "\\", "\u29f9": "\\",
  "\u3002": ".", "\uff61": ".", "\ufe12": ".",
};

function decodeOnce(text: string): string {
  const bytes = text.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  const utf8 = Buffer.from(bytes, "latin1").toString("utf8");
  return utf8.includes("\ufffd") ? bytes : utf8;
}

/** Segments as an upstream applying `decodes` rounds of decoding and every other leniency reads them; null if it leaves the base. */
function reading(raw: string, decodes: number, lenient: boolean): string[] | null {
  let text = raw;
  for (let i = 0; i < decodes; i++) text = decodeOnce(text);
  if (lenient) {
    text = [...text.normalize("NFKC")].map((c) => BEST_FIT[c] ?? c).join("").replace(/\\/g, "/");
    text = text.split(/[?#]/, 1)[0]!;
  }
  const out: string[] = [];
  for (let segment of text.split("/")) {
    // Trailing dots, spaces (Unicode ones too, as trim() takes them) and invisible characters stripped,
    // and the spaces and invisible characters before it.
    if (lenient)
      segment = segment
        .split(";", 1)[0]!
        .replace(/[.\s\u180e\u200b-\u200d\u2060]+$/, (m) => (/^\.+$/.test(segment) ? m : ""))
        .replace(/^[\s\u180e\u200b-\u200d\u2060]+/, "");
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(lenient ? segment.toLowerCase() : segment);
  }
  return out;
}

/** Every way some upstream might read the path. */
function readings(raw: string): (string[] | null)[] {
  return [reading(raw, 1, false), reading(raw, 1, true), reading(raw, 2, true), reading(raw, 3, true)];
}

/** Patterns as regular expressions, independent of src/policy/paths.ts; case-insensitive when asked. */
function patternRegex(pattern: string, ignoreCase: boolean): RegExp {
  const body = pattern
    .split("/")
    .filter(Boolean)
    .map((seg) => (seg === "**" ? "(?:/[^/]+)*" : seg === "*" || seg.startsWith("{") ? "/[^/]+" : "/" + seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${body}$`, ignoreCase ? "i" : "");
}
const matches = (pattern: string, segments: string[], ignoreCase: boolean) =>
  patternRegex(pattern, ignoreCase).test(segments.length === 0 ? "" : "/" + segments.join("/"));

/** The methods a call could run as: its own, and any a method-override parameter names. */
function methodsRunAs(method: string, query: string, contentType: string | undefined, body: string): string[] {
  const named = (params: string) =>
    params
      .split(/[&;]/)
      .filter((p) => OVERRIDE_NAMES.some((n) => p.startsWith(n + "=")))
      .map((p) => p.slice(p.indexOf("=") + 1).toUpperCase());
  const form = method === "POST" && (contentType === undefined || contentType === "application/x-www-form-urlencoded");
  return [method, ...named(query), ...(form ? named(body) : [])];
}

/** Every name some upstream might read a query's parameters as (`;` splits, decoding, NFKC, PHP arrays and mangling). */
function queryNames(query: string): Set<string> {
  const names = new Set<string>();
  for (const pair of query.split(/[&;]/)) {
    let name = pair.split("=", 1)[0]!.replace(/\+/g, " ");
    for (let decodes = 1; decodes <= 3; decodes++) {
      name = decodeOnce(name);
      const read = name.normalize("NFKC").toLowerCase();
      for (const form of [read, read.replace(/\[[^\]]*\]$/, "")]) names.add(form).add(form.replace(/[ .[]/g, "_"));
    }
  }
  return names;
}

// ---- generators -------------------------------------------------------------------------------

const WORDS = ["v1", "admin", "users", "items", "secrets", "x"];
const OVERRIDE_NAMES = ["_method", ".method", "[method", "%2Emethod", "_METHOD", "%5Fmethod", "X-HTTP-Method-Override", "x_http_method", "_method[]", "%255Fmethod"];

const method = fc.constantFrom(...HTTP_METHODS);
const methods = fc.oneof(fc.subarray([...HTTP_METHODS], { minLength: 1 }), fc.constant([...HTTP_METHODS] as HttpMethod[]));
const patternSegment = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...WORDS) }, fc.constantFrom("*", "**", "{id}", "Admin"));
const pattern = fc.array(patternSegment, { minLength: 1, maxLength: 4 }).map((segs) => "/" + segs.join("/"));
const QUERY_RULE_NAMES = ["force", "dry_run"];
const rule: fc.Arbitrary<HttpRule> = fc.oneof(
  fc.record({ method }),
  fc.record({ path: pattern }),
  fc.record({ method, path: pattern }),
  fc.record({ query: fc.constantFrom(...QUERY_RULE_NAMES).map((name) => ({ [name]: "*" })) }),
);

/** One character of a word, spelled some way an upstream may read as the same character. */
const spelled = (c: string): fc.Arbitrary<string> => {
  const hex = c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0");
  const options = [c, c.toUpperCase(), `%${hex}`, `%25${hex}`, `%2525${hex}`];
  if (/[a-z]/.test(c)) options.push(String.fromCharCode(0xff41 + c.charCodeAt(0) - 97)); // full-width
  if (c === "i") options.push("\u0131", "\u0130");
  if (c === "s") options.push("\u017f");
  return fc.constantFrom(...options);
};
/** A word with one character spelled otherwise. */
const spelledWord = (word: string) =>
  fc.nat(word.length - 1).chain((i) => spelled(word[i]!).map((c) => word.slice(0, i) + c + word.slice(i + 1)));
const oddSegment = fc.constantFrom(
  "", ".", "..", "%2e", "%2e%2e", "%252e%252e", "\uff0e\uff0e", "\u2025", "%EF%BC%8E%EF%BC%8E", "x\u2215admin", "x%EF%BC%8Fadmin",
  "admin.", "admin%20", "admin%C2%A0", "admin%E3%80%80", "admin%E2%80%8B", "admin%EF%BB%BF", "%20admin", "%C2%A0admin", "%E2%80%8Badmin", "%EF%BB%BFadmin", "admin;x", "admin%3Bx", "%252f", "x%2fadmin", "a\\..\\admin", "%C0%AE%C0%AE", "admin%00",
);
const word = fc.constantFrom(...WORDS);
const segment = fc.oneof({ weight: 6, arbitrary: word }, { weight: 4, arbitrary: word.chain(spelledWord) }, { weight: 1, arbitrary: oddSegment });
const rawPath = fc.tuple(fc.array(segment, { minLength: 0, maxLength: 5 }), fc.boolean()).map(([segs, slash]) => "/" + segs.join("/") + (slash && segs.length ? "/" : ""));

const overrideParam = fc.tuple(fc.constantFrom(...OVERRIDE_NAMES), fc.constantFrom(...HTTP_METHODS)).map(([n, m]) => `${n}=${m}`);
/** A query rule's parameter, spelled some way an upstream may read as it, or as something else. */
const ruleParam = fc.constantFrom(
  "force=1", "FORCE", "%66orce=1", "%2566orce=1", "%EF%BD%86orce=1", "force[]=1", "force[x]=1", "a=1;force=1", "+force=1", "x[force]=1", "forced=1",
  "dry_run=1", "dry.run=1", "dry+run=1", "dry%20run=1", "dry%5Brun=1", "dry-run=1",
);
const params = fc
  .array(
    fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom("a=1", "q=_method", "method=x", "page=2") },
      { weight: 1, arbitrary: overrideParam },
      { weight: 1, arbitrary: ruleParam },
    ),
    { maxLength: 3 },
  )
  .map((ps) => ps.join("&"));
const contentType = fc.constantFrom(undefined, "application/x-www-form-urlencoded", "application/json");

const grant = fc.record({
  methods,
  paths: fc.array(fc.oneof(pattern, fc.constantFrom("/**", "/v1/**", "/*/*")), { minLength: 1, maxLength: 3 }),
  deny: fc.array(rule, { maxLength: 3 }),
});
const call = fc.record({ method, path: rawPath, query: params, contentType, body: params });

// ---- the property -----------------------------------------------------------------------------

const target: TargetPolicy = { environment: "staging", environmentRequiresApproval: false, protocol: "http", basePath: [], presets: [] };

function grantPolicy(g: { methods: HttpMethod[]; paths: string[]; deny: HttpRule[] }): GrantPolicy {
  return {
    id: "g", upstream: "api", methods: g.methods, paths: g.paths, deny: g.deny, agentIds: ["a"], environments: ["staging"],
    requiresApproval: false, destructive: [], requiresApprovalFor: [], graphql: null, jsonrpc: null, allowProtected: [], budgets: null,
  };
}

describe("REQ-30: decide(): properties over random calls and grants", () => {
  it("never allows a call a deny rule matches under any upstream reading, nor one outside the granted methods and paths", () => {
    let allowed = 0;
    fc.assert(
      fc.property(grant, fc.nat(3).map((n) => n === 0), call, (g, narrowerToken, c) => {
        const policy = grantPolicy(g);
        const token: TokenCapabilities = { agentId: "a", grantId: "g", upstream: "api", methods: narrowerToken ? g.methods.slice(1) : g.methods, paths: g.paths };
        const normalised = normalisePath(c.path);
        if (!normalised.ok) return; // refused before decide(): nothing is forwarded
        const headers = c.contentType === undefined ? {} : { "content-type": c.contentType };
        const decision = decide(token, policy, {
          upstream: "api", method: c.method, path: normalised.path, target, query: c.query, headers, body: Buffer.from(c.body),
        });
        if (!decision.allow) return;
        allowed++;
        const runAs = methodsRunAs(c.method, c.query, c.contentType, c.body);
        const views = readings(c.path);
        const names = queryNames(c.query);
        for (const m of runAs) {
          expect(token.methods, `runs as ${m}`).toContain(m);
          expect(policy.methods, `runs as ${m}`).toContain(m);
        }
        for (const view of views) {
          expect(view, "a reading leaves the base").not.toBeNull();
          for (const rule of policy.deny) {
            const hit =
              runAs.some((m) => rule.method === undefined || rule.method === m) &&
              (rule.path === undefined || matches(rule.path, view!, true)) &&
              (rule.query === undefined || Object.keys(rule.query).every((name) => names.has(name)));
            expect(hit, `deny ${JSON.stringify(rule)} matches ${c.method} ${c.path}?${c.query} read as /${view!.join("/")}`).toBe(false);
          }
          expect(policy.paths.some((p) => matches(p, view!, true)), `/${view!.join("/")} outside ${policy.paths}`).toBe(true);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
    // The run must exercise allowed calls too, or the invariants above would hold vacuously.
    expect(allowed).toBeGreaterThan(RUNS / 20);
  });
});
