import { z } from "zod";
import { HTTP_METHODS, type GrantPolicy, type ProxyRequest } from "../policy/decide.js";
import { parsedGraphql, type ParsedGraphqlRequest } from "../policy/graphql.js";
import { foldedSegmentsMatch, foldSegment, isValidPathPattern } from "../policy/paths.js";
import { presetRedactionsOf } from "../policy/presets/index.js";
import { DETECTOR_NAMES, type DetectorName } from "./detectors.js";
import { selectsField } from "./graphql-fields.js";
import { compileJsonSelector, isValidJsonSelector, type JsonSelector } from "./json-path.js";

/**
 * Redaction rules for secrets an upstream returns on purpose (docs/redaction.md): a grant's `redact`
 * list, and its presets' defaults (`railway.variables`) less those the grant opts out of. Validated when
 * a grant is written, compiled once per loaded grant, and narrowed per call to a ResponsePlan.
 */

const pathPattern = z.string().refine(isValidPathPattern, "a path pattern: /literal, * (one segment), {name} (one segment), ** (any depth)");

export const jsonRedactRule = z.strictObject({
  /** The request paths (upstream-relative, as a grant's paths) whose responses the rule reads; all when absent. */
  path: pathPattern.optional(),
  method: z.enum(HTTP_METHODS).optional(),
  json: z.string().min(1).max(500).refine(isValidJsonSelector, "a JSON path: $, .name, [\"name\"], [0], [*], .*, ..name"),
});
export const graphqlRedactRule = z.strictObject({
  /** A field name (never an alias), redacted wherever the request's document selects it. */
  graphqlField: z.string().max(100).regex(/^[_A-Za-z][_0-9A-Za-z]*$/, "a GraphQL field name"),
});
export const detectorRedactRule = z.strictObject({
  detector: z.enum(DETECTOR_NAMES),
  path: pathPattern.optional(),
});
export const redactRule = z.union([jsonRedactRule, graphqlRedactRule, detectorRedactRule]);
export type RedactRule = z.infer<typeof redactRule>;

/** A rule compiled, with the name its redactions are counted under in the audit (`redact[0]`, `railway.variables`). */
type CompiledRule =
  | { label: string; kind: "json"; path?: string; method?: string; selector: JsonSelector; fullPath: boolean }
  | { label: string; kind: "graphql"; field: string }
  | { label: string; kind: "detector"; path?: string; detector: DetectorName; fullPath: boolean };

function compileRule(rule: RedactRule, label: string, fullPath: boolean): CompiledRule {
  if ("graphqlField" in rule) return { label, kind: "graphql", field: rule.graphqlField };
  if ("detector" in rule) return { label, kind: "detector", path: rule.path, detector: rule.detector, fullPath };
  const compiled = compileJsonSelector(rule.json);
  // Rules are validated when written; one that is not (a row edited by hand) selects the whole document.
  return { label, kind: "json", path: rule.path, method: rule.method, selector: compiled.ok ? compiled.selector : [], fullPath };
}

/** Preset defaults, compiled once: their paths match the upstream's full path, like preset operations. */
const presetRules = new Map<string, CompiledRule[]>();
function compiledPresetRedaction(id: string, rules: readonly RedactRule[]): CompiledRule[] {
  let compiled = presetRules.get(id);
  if (!compiled) presetRules.set(id, (compiled = rules.map((r) => compileRule(r, id, true))));
  return compiled;
}

type CompiledGrant = { rules: CompiledRule[]; optOut: ReadonlySet<string> };
const compiledGrants = new WeakMap<GrantPolicy, CompiledGrant>();

/** Compiles a loaded grant's rules; the grant cache calls this once per grant it loads (src/grants/grants.ts). */
export function compileGrantRedaction(grant: GrantPolicy): CompiledGrant {
  let compiled = compiledGrants.get(grant);
  if (!compiled) {
    compiled = { rules: (grant.redact ?? []).map((rule, i) => compileRule(rule, `redact[${i}]`, false)), optOut: new Set(grant.redactOptOut ?? []) };
    compiledGrants.set(grant, compiled);
  }
  return compiled;
}

/** What one call's response gets, besides the credential's own secrets. */
export type ResponsePlan = {
  detectors: { label: string; detector: DetectorName }[];
  json: { label: string; selector: JsonSelector }[];
  graphql: { label: string; fields: ReadonlySet<string>; requests: readonly ParsedGraphqlRequest[] | null }[];
  /** Preset redactions the grant opted out of that would have applied to this call: its audit event names them. */
  optedOut: string[];
};

const EMPTY_PLAN: ResponsePlan = { detectors: [], json: [], graphql: [], optedOut: [] };

/**
 * The rules that apply to this call: those whose method and path match, and GraphQL fields its document
 * selects. `call` is the request decide() judged, so the GraphQL documents it parsed are read again
 * from memory, not parsed twice.
 */
export function planResponseRedaction(grant: GrantPolicy, call: ProxyRequest): ResponsePlan {
  const compiled = compileGrantRedaction(grant);
  const presets = presetRedactionsOf(call.target.presets);
  // Most grants and upstreams have no rules: nothing is computed for them per call.
  if (compiled.rules.length === 0 && presets.length === 0) return EMPTY_PLAN;
  const folded = call.path.segments.map(foldSegment);
  const fullPath = [...call.target.basePath.map(foldSegment), ...folded];
  const plan: ResponsePlan = { detectors: [], json: [], graphql: [], optedOut: [] };
  const add = (rule: CompiledRule, into: ResponsePlan) => {
    if (rule.kind === "graphql") {
      const requests = parsedGraphql(call);
      // A call whose document could not be read (decide() refuses those) has its result refused too: null.
      const documents = requests.ok ? requests.value : null;
      const fields = new Set([rule.field]);
      if (documents === null || selectsField(documents, fields)) into.graphql.push({ label: rule.label, fields, requests: documents });
      return;
    }
    if (rule.path !== undefined && !foldedSegmentsMatch(rule.path, rule.fullPath ? fullPath : folded)) return;
    if (rule.kind === "detector") into.detectors.push({ label: rule.label, detector: rule.detector });
    else if (rule.method === undefined || rule.method === call.method) into.json.push({ label: rule.label, selector: rule.selector });
  };
  for (const rule of compiled.rules) add(rule, plan);
  for (const preset of presets) {
    const rules = compiledPresetRedaction(preset.id, preset.rules);
    if (!compiled.optOut.has(preset.id)) {
      for (const rule of rules) add(rule, plan);
      continue;
    }
    const wouldApply: ResponsePlan = { detectors: [], json: [], graphql: [], optedOut: [] };
    for (const rule of rules) add(rule, wouldApply);
    if (wouldApply.detectors.length + wouldApply.json.length + wouldApply.graphql.length > 0) plan.optedOut.push(preset.id);
  }
  return plan;
}

