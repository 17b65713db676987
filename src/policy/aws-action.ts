import { mediaType, refuse, singleHeader, singleParam, uncompressed, utf8Text, type CallContent } from "./content.js";
import type { Inspection } from "./operations.js";

/**
 * The AWS action a call names: the `Action` parameter of the Query protocol (in the query string or a
 * form body) or the operation in `X-Amz-Target` (JSON protocols). Named twice, even identically, or a
 * body Keyward cannot read for it: refused. No action and no body is not an error (no AWS operation).
 */
export function inspectAwsAction(call: CallContent): Inspection {
  if (!call.body) return refuse("body was not read");
  const names: string[] = [];
  const fromQuery = singleParam(new URLSearchParams(call.query), "Action");
  if (!fromQuery.ok) return fromQuery;
  if (fromQuery.value !== undefined) names.push(fromQuery.value);

  const target = singleHeader(call.headers, "x-amz-target");
  if (!target.ok) return target;
  if (target.value !== undefined) names.push(target.value.slice(target.value.lastIndexOf(".") + 1));

  const type = mediaType(call.headers);
  if (!type.ok) return type;
  if (type.value === "application/x-www-form-urlencoded") {
    const plain = uncompressed(call.headers);
    if (!plain.ok) return plain;
    const text = utf8Text(call.body);
    if (!text.ok) return text;
    const fromBody = singleParam(new URLSearchParams(text.value), "Action");
    if (!fromBody.ok) return fromBody;
    if (fromBody.value !== undefined) names.push(fromBody.value);
  }
  if (names.length > 1) return refuse("AWS action named more than once");
  // A body in any other form might still carry an action that a lenient server reads.
  if (names.length === 0 && call.body.length > 0 && type.value !== "application/x-www-form-urlencoded") {
    return refuse("a body that names no AWS action Keyward can read");
  }
  return { ok: true, operations: names.map((action) => ({ kind: "aws", action })) };
}
