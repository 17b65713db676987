import { mediaType, refuse, singleHeader, singleParam, uncompressed, utf8Text, type CallContent, type Read } from "./content.js";
import type { Inspection } from "./operations.js";

/**
 * The parameters the Query protocol names its action by: AWS documents `Operation` as the older name,
 * "supported for backward compatibility with other AWS Query APIs".
 */
const ACTION_PARAMETERS = ["Action", "Operation"];

/** Adds the actions URL-encoded parameters name to `names`; a parameter given twice is refused. */
function actionsIn(params: URLSearchParams, names: string[]): Read<true> {
  for (const name of ACTION_PARAMETERS) {
    const value = singleParam(params, name);
    if (!value.ok) return value;
    if (value.value !== undefined) names.push(value.value);
  }
  return { ok: true, value: true };
}

/**
 * The AWS action a call names: the `Action` (or `Operation`) parameter of the Query protocol (in the
 * query string or a form body) or the operation in `X-Amz-Target` (JSON protocols). Named twice, even
 * identically, or a body Keyward cannot read for it: refused. No action and no body is not an error (no AWS operation).
 */
export function inspectAwsAction(call: CallContent): Inspection {
  if (!call.body) return refuse("body was not read");
  const names: string[] = [];
  const params = new URLSearchParams(call.query);
  const fromQuery = actionsIn(params, names);
  if (!fromQuery.ok) return fromQuery;

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
    const bodyParams = new URLSearchParams(text.value);
    const fromBody = actionsIn(bodyParams, names);
    if (!fromBody.ok) return fromBody;
    for (const [name, value] of bodyParams) params.append(name, value);
  }
  if (names.length > 1) return refuse("AWS action named more than once");
  // A body in any other form might still carry an action that a lenient server reads (Rack reads a body
  // without a Content-Type as a form), besides or instead of one in the query string. Only a JSON
  // protocol call, whose action X-Amz-Target names, has another kind of body.
  if (target.value === undefined && call.body.length > 0 && type.value !== "application/x-www-form-urlencoded") {
    return refuse("a body that names no AWS action Keyward can read");
  }
  const queryParams = target.value === undefined ? params : null;
  return { ok: true, operations: names.map((action) => ({ kind: "aws", action, params: queryParams })) };
}
