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

/**
 * Most distinct ids a JSON-RPC refusal echoes, one error each: ethers' default batch size, and more than
 * any client's batch of distinct calls is likely to hold.
 */
export const MAX_ECHOED_JSONRPC_IDS = 100;
/** Longest string id echoed; ids are counters or UUIDs in practice, and a longer one is answered as null. */
export const MAX_ECHOED_JSONRPC_ID_LENGTH = 100;

/**
 * The JSON-RPC ids a refusal of this body echoes. A single call's id, or each distinct id of a batch once
 * (members sharing an id could not be told apart by the client anyway; calls without one, notifications
 * and members that are no call at all, share `null`). The batch is whatever the agent sent, up to the
 * inspection limit (500,000 members in 1 MB): past MAX_ECHOED_JSONRPC_IDS distinct ids, or when the body
 * cannot be read, the answer is a single error with id null, as JSON-RPC 2.0 answers an invalid batch
 * (§6), so the refusal's size never follows the batch's: the client finds no answer of its own for any
 * call of the batch, and fails them all, which is what the refusal means.
 */
export function jsonRpcIds(body: Uint8Array | undefined): { batch: boolean; ids: JsonRpcId[] } {
  const oneNullError = { batch: false, ids: [null] };
  if (!body) return oneNullError;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    return oneNullError;
  }
  const idOf = (member: unknown): JsonRpcId => {
    const id = member !== null && typeof member === "object" ? (member as { id?: unknown }).id : undefined;
    if (typeof id === "string") return id.length <= MAX_ECHOED_JSONRPC_ID_LENGTH ? id : null;
    return typeof id === "number" ? id : null;
  };
  if (!Array.isArray(parsed) || parsed.length === 0) return { batch: false, ids: [idOf(parsed)] };
  const ids = new Set<JsonRpcId>();
  for (const member of parsed) {
    ids.add(idOf(member));
    if (ids.size > MAX_ECHOED_JSONRPC_IDS) return oneNullError;
  }
  return { batch: true, ids: [...ids] };
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

/**
 * Longest reason a refusal quotes. A reason names what the agent sent (its path, a JSON-RPC method or
 * GraphQL field of any length), and a JSON-RPC batch's refusal quotes it in each of its errors; the whole
 * reason stays in the call's audit event.
 */
export const MAX_QUOTED_REASON_LENGTH = 300;

/** The reason as quoted, cut short past MAX_QUOTED_REASON_LENGTH (never between the halves of a surrogate pair). */
function quotedReason(reason: string | undefined): string | undefined {
  if (reason === undefined || reason.length <= MAX_QUOTED_REASON_LENGTH) return reason;
  const end = /[\ud800-\udbff]/.test(reason[MAX_QUOTED_REASON_LENGTH - 1]!) ? MAX_QUOTED_REASON_LENGTH - 1 : MAX_QUOTED_REASON_LENGTH;
  return `${reason.slice(0, end)}…`;
}

/**
 * The refusal body for a KeywardError in the upstream's protocol; null for the Keyward dialect (the
 * error handler's JSON). `jsonRpc` carries the ids the refusal echoes (jsonRpcIds: each distinct id of a
 * batch gets its own error, none of the calls having been forwarded).
 */
export function nativeRefusal(
  err: KeywardError,
  dialect: RefusalDialect,
  context: { requestId: string; jsonRpc?: { batch: boolean; ids: JsonRpcId[] } },
): NativeRefusal | null {
  const reason = quotedReason(err.extra.reason);
  // What the message says: the error's message, and the reason when there is one (it names the rule).
  const message = reason ? `${err.message}: ${reason}` : err.message;
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
          errors: [{ message, extensions: { code: err.code, ...(reason && { reason }), ...(retryAfter && { retryAfter: Number(retryAfter) }) } }],
        }),
      };
    case "jsonrpc": {
      const { batch, ids } = context.jsonRpc ?? { batch: false, ids: [null] };
      const errors = ids.map((id) => ({
        jsonrpc: "2.0",
        id,
        error: { code: jsonRpcErrorCode(err.status), message, data: { code: err.code, ...(reason && { reason }) } },
      }));
      return { contentType: "application/json", headers: {}, body: JSON.stringify(batch ? errors : errors[0]) };
    }
  }
}
