import type { DecisionCode } from "../sdk/codes.js";
import type { Headers } from "./content.js";
import { globMatches } from "./glob.js";
import { refuseMethodOverride, formOverrideInspected } from "./method-override.js";
import { describeOperation, inspectOperations, inspectorFor, type Operation } from "./operations.js";
import { foldedSegmentsMatch, foldSegment, pathMatches, type NormalisedPath } from "./paths.js";
import { protectedOperationsOf, type ProtectedOperation } from "./presets/index.js";
import { parseQuery, queryMatches, readQueryLeniently, type QueryParams } from "./query.js";
import { mayBeS3BulkDelete, s3DeletedObjectCount, s3OperationsOf } from "./s3.js";
import type { Budgets, GraphqlRules, JsonRpcRules, Protocol } from "./rules.js";
import type { RedactRule } from "../redaction/rules.js";

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/**
 * Matches when every field it sets matches; a rule must set at least one. Used to deny, to tag
 * destructive calls, and to mark calls that need an approved token.
 */
export type HttpRule = { method?: HttpMethod; path?: string; query?: Readonly<Record<string, string>> };

/** The grant as stored now: edits narrow live tokens at once. */
export type GrantPolicy = {
  id: string;
  upstream: string;
  methods: readonly HttpMethod[];
  paths: readonly string[];
  deny: readonly HttpRule[];
  agentIds: readonly string[];
  /** Environments the grant covers: a call to an upstream in any other is denied. */
  environments: readonly string[];
  /** Every token under the grant needs a human's approval (src/approvals). */
  requiresApproval: boolean;
  /** HTTP calls that count as destructive for budgets, besides DELETE. */
  destructive: readonly HttpRule[];
  /** HTTP calls that need a token a human approved. */
  requiresApprovalFor: readonly HttpRule[];
  graphql: GraphqlRules | null;
  jsonrpc: JsonRpcRules | null;
  /** Protected preset operations the grant names; each also needs a token a human approved for it. */
  allowProtected: readonly string[];
  /** Enforced after an allow decision (src/budgets), not by decide(). */
  budgets: Budgets | null;
  /** Response redaction rules (src/redaction/rules.ts); applied to responses, not by decide(). */
  redact?: readonly RedactRule[];
  /** Preset redactions the grant turns off (`railway.variables`); calls that then show them are audited so. */
  redactOptOut?: readonly string[];
};

/** What a human approved for a token (src/approvals). */
export type TokenApproval = { protectedOperations: readonly string[] };

/** What the token itself allows: a subset of the grant when it was issued. */
export type TokenCapabilities = {
  agentId: string;
  grantId: string;
  upstream: string;
  methods: readonly HttpMethod[];
  paths: readonly string[];
  /** Set only for a token issued through a human's approval. */
  approval?: TokenApproval | null;
};

/** The upstream as configured now. */
export type TargetPolicy = {
  environment: string;
  /** The environment is marked so that every token for it needs a human's approval (src/environments). */
  environmentRequiresApproval: boolean;
  protocol: Protocol;
  /** The base URL's host: S3 reads the bucket from it in virtual-hosted style (src/policy/s3.ts). */
  host?: string;
  /** Decoded segments of the base URL's path: preset paths match the upstream's full path. */
  basePath: readonly string[];
  presets: readonly string[];
};

export type ProxyRequest = {
  upstream: string;
  method: string;
  path: NormalisedPath;
  target: TargetPolicy;
  /** The query string as forwarded, still encoded, without the "?" (src/proxy/target.ts queryAsSent). */
  query: string;
  headers: Headers;
  /** The whole body when decide() needs it (see bodyNeeded), otherwise undefined. */
  body: Uint8Array | undefined;
};

/**
 * On allow: the rules that allowed it, how many destructive operations it performs (for budgets), and the
 * operations it runs where Keyward can name them (`aws-s3.DeleteObjects`, `mutation volumeDelete`), for the audit.
 */
export type Decision =
  | { allow: true; rule: string; destructive: number; operations?: string[] }
  | { allow: false; code: DecisionCode; reason: string };
type Denial = Extract<Decision, { allow: false }>;

const deny = (code: DecisionCode, reason: string): Denial => ({ allow: false, code, reason });

/**
 * Whether decide() needs the call's whole body: to inspect its operations (see inspectorFor), or to
 * look for a method override in a form POST (see formOverrideInspected). The proxy reads it within the
 * inspection limit; decide() denies a call whose body it needed and did not get.
 */
export function bodyNeeded(token: TokenCapabilities, grant: GrantPolicy, target: TargetPolicy, method: string, headers: Headers, rawQuery: string): boolean {
  return (
    inspectorFor(target, grant) !== null ||
    formOverrideInspected(method, headers, token, grant) ||
    // An S3 bulk delete is audited with how many objects it deletes (`aws-s3.DeleteObject ×1000`).
    // The method first: a call that is no POST needs neither the presets' operations nor its query parsed.
    (mayBeS3BulkDelete(method, rawQuery) && protectedOperationsOf(target.presets).some((op) => "s3" in op.match))
  );
}

/** A rule as reasons name it: "DELETE any path", "any method /v1/volumes/**". */
export const describeHttpRule = (rule: HttpRule) =>
  `${rule.method ?? "any method"} ${rule.path ?? "any path"}` +
  (rule.query ? "?" + Object.entries(rule.query).map(([name, value]) => `${name}=${value}`).join("&") : "");

// Read once per call, and only when a rule asks for it: every reading, since query rules only take
// something away (deny, approval, destructive, protection), so a lenient reading can only refuse more.
const parsedQueries = new WeakMap<ProxyRequest, QueryParams>();
const queryOf = (request: ProxyRequest): QueryParams => {
  let parsed = parsedQueries.get(request);
  if (!parsed) parsedQueries.set(request, (parsed = readQueryLeniently(request.query)));
  return parsed;
};

/**
 * Whether a rule that takes something away, naming `ruleMethod`, covers a call's method: one naming GET
 * covers HEAD too, which most servers answer by running the GET handler (its side effects, its headers).
 */
const takesMethod = (ruleMethod: string, method: string) => ruleMethod === method || (ruleMethod === "GET" && method === "HEAD");

/**
 * Rules that take something away match folded paths (foldedSegmentsMatch): case and encoding do not walk
 * around them; and the query, where the rule names one.
 */
function isHttpRuleHit(rule: HttpRule, method: string, foldedSegments: readonly string[], request: ProxyRequest): boolean {
  if (rule.method === undefined && rule.path === undefined && rule.query === undefined) return true; // malformed rules match everything: deny, never allow
  if (rule.method !== undefined && !takesMethod(rule.method, method)) return false;
  if (rule.path !== undefined && !foldedSegmentsMatch(rule.path, foldedSegments)) return false;
  if (rule.query !== undefined && !queryMatches(rule.query, queryOf(request))) return false;
  return true;
}

/**
 * Why no call of this token could pass under its grant (`grant`, found by the token's grant id) as it
 * stands, whatever the call: the checks decide() makes before it looks at the call, which introspection
 * makes too (a token that can make no call is not active).
 */
export function standingRefusal(token: TokenCapabilities, grant: GrantPolicy, upstream: string, target: TargetPolicy): Denial | null {
  if (!grant.agentIds.includes(token.agentId)) return deny("agent_not_in_grant", "the agent is no longer in the grant");
  if (token.upstream !== upstream || grant.upstream !== upstream) {
    return deny("wrong_upstream", `the token is not valid for upstream ${upstream}`);
  }
  if (!grant.environments.includes(target.environment)) {
    return deny("environment_not_granted", `the grant does not cover environment ${target.environment}`);
  }
  const approval = token.approval ?? null;
  if (!approval && grant.requiresApproval) return deny("approval_required", "the grant requires a token approved by a human");
  if (!approval && target.environmentRequiresApproval) {
    return deny("approval_required", `environment ${target.environment} requires a token approved by a human`);
  }
  return null;
}

/**
 * May this token make this call? Pure: everything it needs is in its arguments. A call is allowed only
 * when the token and the grant as it stands now both allow it, the grant covers the upstream's
 * environment, and every operation in it passes: deny rules win, protected operations need the grant to
 * name them and a human to have approved the token, and anything no rule allows is denied. A call that
 * must be inspected and cannot be is denied.
 */
export function decide(token: TokenCapabilities, grant: GrantPolicy | null, request: ProxyRequest): Decision {
  if (!grant || grant.id !== token.grantId) return deny("grant_gone", "the token's grant no longer exists");
  const standing = standingRefusal(token, grant, request.upstream, request.target);
  if (standing) return standing;
  const { target } = request;
  const approval = token.approval ?? null;

  const method = request.method as HttpMethod;
  if (!token.methods.includes(method)) return deny("method_not_granted", `the token does not allow ${request.method}`);
  if (!grant.methods.includes(method)) return deny("method_not_granted", `the grant does not allow ${request.method}`);
  // Before any rule: a call that could run as another method is not the call the rules would judge.
  const override = refuseMethodOverride(request, token, grant);
  if (override) return deny(override.code, override.reason);

  const folded = request.path.segments.map(foldSegment);
  const denyIndex = grant.deny.findIndex((rule) => isHttpRuleHit(rule, method, folded, request));
  if (denyIndex !== -1) {
    const rule = grant.deny[denyIndex]!;
    return deny("deny_rule", `deny[${denyIndex}] matches (${describeHttpRule(rule)})`);
  }

  const tokenPath = token.paths.find((p) => pathMatches(p, request.path));
  if (tokenPath === undefined) return deny("path_not_granted", `the token does not allow ${request.path.decoded}`);
  const grantPath = grant.paths.find((p) => pathMatches(p, request.path));
  if (grantPath === undefined) return deny("path_not_granted", `the grant does not allow ${request.path.decoded}`);
  const approvalRule = grant.requiresApprovalFor.findIndex((rule) => isHttpRuleHit(rule, method, folded, request));
  if (approvalRule !== -1 && !approval) {
    return deny("approval_required", `requiresApprovalFor[${approvalRule}] requires a token approved by a human`);
  }
  const rules = [`${request.method} ${tokenPath}`];
  let destructive = method === "DELETE" || grant.destructive.some((rule) => isHttpRuleHit(rule, method, folded, request)) ? 1 : 0;

  const guarded = protectedOperationsOf(target.presets);
  const fullPath = [...target.basePath.map(foldSegment), ...folded];
  // S3 names its objects case-sensitively: its operations are read from the path as sent, and from the
  // query as S3 reads it (strictly: a lenient reading could pick another, less protected operation).
  const s3Operations = guarded.some((op) => "s3" in op.match)
    ? s3OperationsOf({ method, host: target.host, fullPath: [...target.basePath, ...request.path.segments], query: parseQuery(request.query), headers: request.headers })
    : [];
  const bulkDelete = s3Operations.includes("DeleteObjects");
  const deletedObjects = bulkDelete && request.body !== undefined ? s3DeletedObjectCount(request.body, request.headers) : null;
  // A bulk delete is named by what it does to each object, and how many: `aws-s3.DeleteObject ×1000`.
  const operations = s3Operations.map((name) =>
    name === "DeleteObjects" && request.body !== undefined ? `aws-s3.DeleteObject ×${deletedObjects ?? "?"}` : `aws-s3.${name}`,
  );
  for (const op of guarded) {
    const { match } = op;
    const hit =
      "http" in match
        ? takesMethod(match.http.method, method) && foldedSegmentsMatch(match.http.path, fullPath) && (!match.http.query || queryMatches(match.http.query, queryOf(request)))
        : "s3" in match && s3Operations.some((name) => match.s3.includes(name));
    if (!hit) continue;
    const refused = refuseProtected(op, grant, approval);
    if (refused) return refused;
    rules.push(`allowProtected ${op.id}`);
    destructive = 1;
  }

  // A bulk delete deletes each object it names: one destructive unit each, as each destructive GraphQL
  // field is, so that a budget of 5 deletes is not one call deleting 1,000. Under such a budget, a body
  // whose objects cannot be counted is not forwarded.
  if (bulkDelete && destructive > 0) {
    if (deletedObjects !== null) destructive = Math.max(destructive, deletedObjects);
    else if (limitsDestructiveCalls(grant.budgets)) {
      return deny("uninspectable", "the objects of this S3 DeleteObjects body cannot be counted against the grant's budget of destructive calls");
    }
  }

  if (grant.graphql && target.protocol !== "graphql") return deny("rules_misfit", `the grant's graphql rules do not fit a ${target.protocol} upstream`);
  if (grant.jsonrpc && target.protocol !== "jsonrpc") return deny("rules_misfit", `the grant's jsonrpc rules do not fit a ${target.protocol} upstream`);
  const inspector = inspectorFor(target, grant);
  if (inspector) {
    const inspection = inspectOperations(inspector, request);
    if (!inspection.ok) return deny("uninspectable", `${inspection.reason}: calls Keyward cannot fully inspect are denied`);
    for (const op of inspection.operations) {
      const verdict = decideOperation(op, grant, guarded, approval);
      if (!verdict.allow) return verdict;
      if (verdict.rule) rules.push(verdict.rule);
      if (verdict.destructive) destructive++;
      operations.push(describeOperation(op));
    }
  }
  // Each rule once: a batch of 20,000 calls to one method passed the same rule 20,000 times.
  return { allow: true, rule: [...new Set(rules)].join("; "), destructive, ...(operations.length > 0 && { operations }) };
}

const limitsDestructiveCalls = (budgets: Budgets | null): boolean =>
  budgets?.perToken?.maxDestructiveCalls !== undefined || budgets?.perGrant?.maxDestructiveCalls !== undefined;

type OperationVerdict = Denial | { allow: true; rule: string | null; destructive: boolean };

/** One operation of a call: deny rules, then protection, then allow rules (when the grant has rules of its kind). */
function decideOperation(
  op: Operation,
  grant: GrantPolicy,
  guarded: readonly ProtectedOperation[],
  approval: TokenApproval | null,
): OperationVerdict {
  const described = describeOperation(op);
  const rules = op.kind === "graphql" ? grant.graphql : op.kind === "jsonrpc" ? grant.jsonrpc : null;
  if (rules) {
    const denyIndex = rules.deny.findIndex((rule) => operationMatches(rule, op));
    if (denyIndex !== -1) return deny("deny_rule", `${op.kind}.deny[${denyIndex}] matches ${described}`);
  }
  const protection = guarded.find((p) => protects(p, op));
  if (protection) {
    const refused = refuseProtected(protection, grant, approval);
    if (refused) return refused;
  }
  // AWS actions have no rules of their own: methods and paths decide, presets protect.
  if (!rules) return { allow: true, rule: protection ? `allowProtected ${protection.id}` : null, destructive: !!protection };
  const allowIndex = rules.allow.findIndex((rule) => operationMatches(rule, op));
  if (allowIndex === -1) return deny("operation_denied", `no ${op.kind}.allow rule matches ${described}`);
  // The first rule that matches allows it; tags take something away, so every matching rule's count: an
  // earlier, broader rule (`{ operation: "mutation" }`) must not wave through the operation a later one
  // singles out for a human or a budget.
  let approvalIndex = -1;
  let destructive = !!protection;
  for (const { index, rule } of taggedAllowRules(rules)) {
    if (index < allowIndex || !operationMatches(rule, op)) continue;
    if (rule.requiresApproval && approvalIndex === -1) approvalIndex = index;
    if (rule.destructive) destructive = true;
  }
  if (approvalIndex !== -1 && !approval) {
    return deny("approval_required", `${op.kind}.allow[${approvalIndex}] requires a token approved by a human`);
  }
  return {
    allow: true,
    rule: `${op.kind}.allow[${allowIndex}] ${described}${protection ? ` (allowProtected ${protection.id})` : ""}`,
    destructive,
  };
}

type AllowRule = (GraphqlRules | JsonRpcRules)["allow"][number];
type TaggedRule = { index: number; rule: AllowRule };

/** Each grant's allow rules that carry a tag, by rules object: found once per grant as loaded, not per operation. */
const taggedRulesOf = new WeakMap<GraphqlRules | JsonRpcRules, readonly TaggedRule[]>();

function taggedAllowRules(rules: GraphqlRules | JsonRpcRules): readonly TaggedRule[] {
  let tagged = taggedRulesOf.get(rules);
  if (!tagged) {
    const allow: readonly AllowRule[] = rules.allow;
    tagged = allow.flatMap((rule, index) => (rule.requiresApproval || rule.destructive ? [{ index, rule }] : []));
    taggedRulesOf.set(rules, tagged);
  }
  return tagged;
}

type OperationRule = { operation?: string; field?: string } | { method: string };

function operationMatches(rule: OperationRule, op: Operation): boolean {
  if (op.kind === "graphql" && !("method" in rule)) {
    return (rule.operation === undefined || rule.operation === op.type) && (rule.field === undefined || globMatches(rule.field, op.field));
  }
  return op.kind === "jsonrpc" && "method" in rule && globMatches(rule.method, op.method);
}

/** Protection is stricter than the upstream: a protected name counts whatever its operation type or case. */
function protects(protection: ProtectedOperation, op: Operation): boolean {
  const { match } = protection;
  if ("graphqlMutation" in match) return op.kind === "graphql" && op.field === match.graphqlMutation;
  if ("awsAction" in match) {
    if (op.kind !== "aws" || op.action.toLowerCase() !== match.awsAction.toLowerCase()) return false;
    return match.zeroed === undefined || mayBeZero(op.params, match.zeroed);
  }
  return false;
}

/**
 * Whether a call may set the integer parameter `name` to 0: it does, or gives it in a form the API might
 * read as 0 or Keyward cannot tell (a sign, a decimal point, twice, any case of the name), or its body was
 * not read as parameters (a JSON protocol call). Absent, it changes nothing.
 */
function mayBeZero(params: URLSearchParams | null, name: string): boolean {
  if (params === null) return true;
  const lower = name.toLowerCase();
  const values = [...params].filter(([key]) => key.toLowerCase() === lower).map(([, value]) => value);
  return values.length > 1 || (values.length === 1 && !/^[1-9][0-9]*$/.test(values[0]!));
}

function refuseProtected(op: ProtectedOperation, grant: GrantPolicy, approval: TokenApproval | null): Denial | null {
  if (!grant.allowProtected.includes(op.id)) {
    return deny("protected_operation", `${op.id} (${op.description}) is protected by a backup protection preset and the grant does not name it`);
  }
  if (!approval?.protectedOperations.includes(op.id)) {
    return deny("approval_required", `${op.id} is protected: it needs a token a human approved for it`);
  }
  return null;
}
