import { isPlainObject, mediaType, refuse, strictJson, uncompressed, type CallContent } from "./content.js";
import type { Inspection, Operation } from "./operations.js";

const CALL_KEYS = new Set(["jsonrpc", "method", "params", "id"]);
const JSON_TYPES = new Set(["application/json", "application/json-rpc", "application/jsonrequest"]);

/**
 * The methods a JSON-RPC call invokes: one for a single call, one per member of a batch (every one of
 * which must then be allowed). Anything that is not plainly a JSON-RPC request or batch is refused.
 */
export function inspectJsonRpc(call: CallContent): Inspection {
  if (call.method !== "POST") return refuse(`JSON-RPC over ${call.method} cannot be inspected`);
  if (!call.body) return refuse("body was not read");
  const plain = uncompressed(call.headers);
  if (!plain.ok) return plain;
  const type = mediaType(call.headers);
  if (!type.ok) return type;
  if (!JSON_TYPES.has(type.value ?? "")) return refuse(`unsupported content type ${type.value ?? "(none)"} for JSON-RPC`);
  const json = strictJson(call.body);
  if (!json.ok) return json;
  const batch = Array.isArray(json.value) ? json.value : [json.value];
  if (batch.length === 0) return refuse("empty JSON-RPC batch");
  const operations: Operation[] = [];
  for (const item of batch) {
    if (!isPlainObject(item)) return refuse("JSON-RPC call is not an object");
    const unknown = Object.keys(item).find((k) => !CALL_KEYS.has(k));
    if (unknown !== undefined) return refuse(`unknown JSON-RPC member ${JSON.stringify(unknown.slice(0, 50))}`);
    if (item.jsonrpc !== undefined && item.jsonrpc !== "2.0") return refuse("unsupported JSON-RPC version");
    if (typeof item.method !== "string" || item.method === "") return refuse("JSON-RPC call without a method");
    operations.push({ kind: "jsonrpc", method: item.method });
  }
  return { ok: true, operations };
}
