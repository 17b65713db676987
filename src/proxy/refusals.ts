import type { KeywardError } from "../http/errors.js";
import type { Headers } from "../policy/content.js";

/**
 * Refusals in the upstream's own protocol, so an agent's client reads a policy refusal as an error it
 * understands (the AWS SDK's `AccessDenied`, a GraphQL `errors` entry, a JSON-RPC error with the call's
 * id) rather than as a broken upstream it should retry. The status code and the `keyward-error` header
 * stay as they are; the Keyward code is in each body. One function maps error × protocol, so the refusal
 * code catalogue slots in here.
 */

/** How the upstream speaks, as far as refusals go. */
export type RefusalDialect =
  | { kind: "aws-xml" }
  | { kind: "aws-query" }
  | { kind: "aws-json"; contentType: string }
  | { kind: "graphql" }
  | { kind: "jsonrpc" }
  | { kind: "keyward" };

export type NativeRefusal = { contentType: string; body: string; headers: Record<string, string> };

/** An id a JSON-RPC response may echo: string, number or null (JSON-RPC 2.0 §5). */
export type JsonRpcId = string | number | null;

/** The dialect of an upstream, from what it is configured as and what the call looks like. */
export function refusalDialect(
  upstream: { protocol: string; presets: readonly string[]; authType: string },
  headers: Headers,
): RefusalDialect {
  if (upstream.protocol === "graphql") return { kind: "graphql" };
  if (upstream.protocol === "jsonrpc") return { kind: "jsonrpc" };
  const aws = upstream.authType === "aws-sigv4" || upstream.presets.some((p) => p.startsWith("aws-"));
  if (!aws) return { kind: "keyward" };
  // JSON protocols name the operation in X-Amz-Target (DynamoDB, KMS, ...), and send their JSON version.
  if (headers["x-amz-target"] !== undefined) {
    const type = String(headers["content-type"] ?? "");
    return { kind: "aws-json", contentType: /^application\/x-amz-json-1\.[01]\b/i.test(type) ? type.split(";")[0]! : "application/x-amz-json-1.0" };
  }
  // Query protocol (RDS, EC2, STS, ...): a form body or an Action in the query.
  if (/^application\/x-www-form-urlencoded/i.test(String(headers["content-type"] ?? ""))) return { kind: "aws-query" };
  return { kind: "aws-xml" };
}

/** The JSON-RPC ids of a call's body: one per member of a batch; null when it cannot be read. */
export function jsonRpcIds(body: Uint8Array | undefined): { batch: boolean; ids: JsonRpcId[] } {
  if (!body) return { batch: false, ids: [null] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    return { batch: false, ids: [null] };
  }
  const idOf = (member: unknown): JsonRpcId => {
    const id = member !== null && typeof member === "object" ? (member as { id?: unknown }).id : undefined;
    return typeof id === "string" || typeof id === "number" ? id : null;
  };
  return Array.isArray(parsed) && parsed.length > 0 ? { batch: true, ids: parsed.map(idOf) } : { batch: false, ids: [idOf(parsed)] };
}

const xmlEscape = (text: string) =>
  text.replace(/[<>&'"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c]!);

/** AWS's error code for a refusal status, REST/Query and JSON spellings. */
function awsCode(status: number): { xml: string; json: string } {
  if (status === 429) return { xml: "SlowDown", json: "ThrottlingException" };
  if (status === 413) return { xml: "EntityTooLarge", json: "ValidationException" };
  if (status === 503) return { xml: "ServiceUnavailable", json: "ServiceUnavailableException" };
  if (status >= 500) return { xml: "InternalError", json: "InternalFailure" };
  return { xml: "AccessDenied", json: "AccessDeniedException" };
}

/** A JSON-RPC error code in the implementation-defined server range (-32000 to -32099), from the HTTP status. */
export function jsonRpcErrorCode(status: number): number {
  return status >= 500 ? -32050 - Math.min(49, status - 500) : -32000 - Math.min(49, Math.max(0, status - 400));
}

/** What the message says: the error's message, and the reason when there is one (it names the rule). */
const messageOf = (err: KeywardError) => (err.extra.reason ? `${err.message}: ${err.extra.reason}` : err.message);

/**
 * The refusal body for a KeywardError in the upstream's protocol; null for the Keyward dialect (the
 * error handler's JSON). `jsonRpc` carries the ids of the refused call (each member of a batch gets its
 * own error, none of them having been forwarded).
 */
export function nativeRefusal(
  err: KeywardError,
  dialect: RefusalDialect,
  context: { requestId: string; jsonRpc?: { batch: boolean; ids: JsonRpcId[] } },
): NativeRefusal | null {
  const message = messageOf(err);
  const retryAfter = err.extra.headers?.["retry-after"];
  switch (dialect.kind) {
    case "keyward":
      return null;
    case "aws-xml": {
      const code = awsCode(err.status).xml;
      return {
        contentType: "application/xml",
        headers: { "x-amz-request-id": context.requestId },
        body:
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message>` +
          `<KeywardCode>${xmlEscape(err.code)}</KeywardCode><RequestId>${xmlEscape(context.requestId)}</RequestId></Error>`,
      };
    }
    case "aws-query": {
      const code = awsCode(err.status).xml;
      return {
        contentType: "text/xml",
        headers: { "x-amzn-requestid": context.requestId },
        body:
          `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code>` +
          `<Message>${xmlEscape(message)}</Message></Error><RequestId>${xmlEscape(context.requestId)}</RequestId></ErrorResponse>`,
      };
    }
    case "aws-json": {
      const code = awsCode(err.status).json;
      return {
        contentType: dialect.contentType,
        headers: { "x-amzn-requestid": context.requestId, "x-amzn-errortype": code },
        body: JSON.stringify({ __type: code, message, keywardCode: err.code }),
      };
    }
    case "graphql":
      return {
        contentType: "application/json",
        headers: {},
        body: JSON.stringify({
          errors: [{ message, extensions: { code: err.code, ...(err.extra.reason && { reason: err.extra.reason }), ...(retryAfter && { retryAfter: Number(retryAfter) }) } }],
        }),
      };
    case "jsonrpc": {
      const { batch, ids } = context.jsonRpc ?? { batch: false, ids: [null] };
      const errors = ids.map((id) => ({
        jsonrpc: "2.0",
        id,
        error: { code: jsonRpcErrorCode(err.status), message, data: { code: err.code, ...(err.extra.reason && { reason: err.extra.reason }) } },
      }));
      return { contentType: "application/json", headers: {}, body: JSON.stringify(batch ? errors : errors[0]) };
    }
  }
}
