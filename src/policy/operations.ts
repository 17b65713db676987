import { inspectAwsAction } from "./aws-action.js";
import type { CallContent } from "./content.js";
import { inspectGraphql, type GraphqlOperationType } from "./graphql.js";
import { inspectJsonRpc } from "./jsonrpc.js";
import { protectedOperationsOf } from "./presets/index.js";
import type { GraphqlRules, JsonRpcRules, Protocol } from "./rules.js";

/** One operation a call performs, as read from its body or query: what operation rules and presets see. */
export type Operation =
  | { kind: "graphql"; type: GraphqlOperationType; field: string }
  | { kind: "jsonrpc"; method: string }
  /** `params`: the Query protocol's parameters (query string and form body); null for a JSON protocol call, whose body is not read. */
  | { kind: "aws"; action: string; params: URLSearchParams | null };

export type Inspection = { ok: true; operations: Operation[] } | { ok: false; reason: string };

export const describeOperation = (op: Operation): string =>
  op.kind === "graphql" ? `${op.type} ${op.field}` : op.kind === "jsonrpc" ? `method ${op.method}` : `action ${op.action}`;

type Inspector = "graphql" | "jsonrpc" | "aws";

/**
 * Whether a call must be read beyond method and path, and how: GraphQL when the grant has GraphQL rules
 * or GraphQL field redaction rules, or the upstream protected GraphQL operations, JSON-RPC when the grant
 * has JSON-RPC rules, AWS actions when a preset protects some. Only then is the body buffered
 * (src/proxy/body.ts).
 */
export function inspectorFor(
  target: { protocol: Protocol; presets: readonly string[] },
  grant: { graphql: GraphqlRules | null; jsonrpc: JsonRpcRules | null; redact?: readonly object[] },
): Inspector | null {
  const guarded = protectedOperationsOf(target.presets);
  // GraphQL field redaction reads the result through the request's document (src/redaction/graphql-fields.ts).
  const redactsFields = grant.redact?.some((rule) => "graphqlField" in rule) ?? false;
  if (target.protocol === "graphql") return grant.graphql || guarded.length > 0 || redactsFields ? "graphql" : null;
  if (target.protocol === "jsonrpc") return grant.jsonrpc ? "jsonrpc" : null;
  return guarded.some((op) => "awsAction" in op.match) ? "aws" : null;
}

export function inspectOperations(inspector: Inspector, call: CallContent): Inspection {
  switch (inspector) {
    case "graphql":
      return inspectGraphql(call);
    case "jsonrpc":
      return inspectJsonRpc(call);
    case "aws":
      return inspectAwsAction(call);
  }
}
