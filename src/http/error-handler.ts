import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { errors as undiciErrors } from "undici";
import { DatabaseConnectTimeout } from "../db/database.js";
import { conflict, databaseUnavailable, KeywardError, type ErrorCode } from "./errors.js";

type ErrorBody = { error: { code: ErrorCode; message: string; reason?: string; details?: unknown } };

/** Fastify's own errors that a client caused, by their stable codes. */
const FASTIFY_CLIENT_ERRORS: Record<string, { status: number; code: ErrorCode; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: "invalid_json", message: "request body is not valid JSON" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: "invalid_json", message: "request body is empty" },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: "payload_too_large", message: "request body too large" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: "unsupported_media_type",
    message: "unsupported content type",
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: "bad_request", message: "invalid content-length" },
  // The router could not decode the URL (e.g. overlong UTF-8): refused before any route runs.
  FST_ERR_BAD_URL: { status: 400, code: "invalid_url", message: "request URL cannot be decoded" },
  FST_ERR_NOT_FOUND: { status: 404, code: "not_found", message: "route not found" },
};

// Prisma's "cannot reach / lost / timed out waiting for the database" codes, and the driver adapter's kinds.
const DATABASE_DOWN_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);
const DATABASE_DOWN_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections"]);
// PostgreSQL shutting down or not yet accepting connections (raw sessions, outside Prisma).
const PG_DOWN_CODES = new Set(["57P01", "57P02", "57P03"]);
// The connection itself failing, as the pg driver reports it for raw sessions (the audit pipeline's).
const NET_DOWN_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOENT", "EHOSTUNREACH"]);

/** The database is stopped, restarting or cut off: a 503 the client may retry, never a 500. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof DatabaseConnectTimeout) return true;
  const e = err as Error & { code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown } } } };
  if (e.name === "PrismaClientInitializationError") return true;
  if (e.name === "PrismaClientKnownRequestError") {
    const cause = e.meta?.driverAdapterError?.cause as { kind?: unknown; originalCode?: unknown } | undefined;
    return DATABASE_DOWN_CODES.has(String(e.code)) || DATABASE_DOWN_KINDS.has(String(cause?.kind)) || PG_DOWN_CODES.has(String(cause?.originalCode));
  }
  // The driver adapter's own error, as Prisma passes it on for some queries: a backend terminated under a
  // query (57P01) arrives this way, and is the database going away, not a bug.
  if (e.name === "DriverAdapterError") {
    const cause = (e as { cause?: { kind?: unknown; originalCode?: unknown } }).cause;
    return DATABASE_DOWN_KINDS.has(String(cause?.kind)) || PG_DOWN_CODES.has(String(cause?.originalCode));
  }
  return (
    PG_DOWN_CODES.has(String(e.code)) ||
    NET_DOWN_CODES.has(String(e.code)) ||
    e.message === "Connection terminated unexpectedly" ||
    e.message.startsWith("timeout exceeded when trying to connect")
  );
}

/**
 * An admin write that lost a race with another: the name it checked free was taken (unique index), the
 * row it read was deleted before its own update or delete (Prisma P2025), or a row it refers to went,
 * or a row referring to it came, before it committed (foreign key). Its transaction rolled back whole;
 * the caller gets the 409 or 404 it would have got a moment later, never a 500 (SECURITY.md, ADM-14, ADM-16).
 */
function lostRace(err: unknown): KeywardError | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { code?: unknown; cause?: { originalCode?: unknown }; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  const known = e.name === "PrismaClientKnownRequestError";
  // PostgreSQL's SQLSTATE, as Prisma or its driver adapter passes it on.
  const sqlState = String((known ? e.meta?.driverAdapterError?.cause?.originalCode : e.name === "DriverAdapterError" ? e.cause?.originalCode : undefined) ?? "");
  if ((known && e.code === "P2002") || sqlState === "23505") return conflict("a concurrent request took the same name or key; read the current state and retry");
  // 23503 foreign_key_violation; 23001 restrict_violation (a grant came while its upstream was being deleted).
  if ((known && e.code === "P2003") || sqlState === "23503" || sqlState === "23001") return conflict("an object this change refers to, or that refers to it, was changed by a concurrent request; read the current state and retry");
  if (known && e.code === "P2025") return new KeywardError(404, "not_found", "not found (deleted by a concurrent request)");
  return undefined;
}

/** An error of a zlib stream: its code is one of zlib's own (Z_DATA_ERROR, Z_BUF_ERROR, ...). */
function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return err instanceof Error && typeof code === "string" && code.startsWith("Z_") && typeof (err as { errno?: unknown }).errno === "number";
}

export function toErrorResponse(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  if (err instanceof KeywardError) {
    const { reason, details, headers } = err.extra;
    return {
      status: err.status,
      headers: headers ?? {},
      body: {
        error: {
          code: err.code,
          message: err.message,
          ...(reason !== undefined && { reason }),
          ...(details !== undefined && { details }),
        },
      },
    };
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const details = err.validation.map((v) => ({
      path: v.instancePath,
      message: v.message,
      ...(v.params && "issue" in v.params ? { code: (v.params.issue as { code?: string }).code } : {}),
    }));
    return {
      status: 400,
      headers: {},
      body: { error: { code: "validation_failed", message: `invalid ${err.validationContext ?? "request"}`, details } },
    };
  }
  if (isDatabaseUnavailable(err)) return toErrorResponse(databaseUnavailable());
  const raced = lostRace(err);
  if (raced) return toErrorResponse(raced);
  // undici only talks to upstreams (and their token endpoints): one that fails after its status line (a body that
  // stalls, breaks its framing or stops short) surfaces here, and is the upstream's fault, not ours.
  if (err instanceof undiciErrors.BodyTimeoutError) {
    return { status: 504, headers: {}, body: { error: { code: "upstream_timeout", message: "upstream did not answer in time" } } };
  }
  if (err instanceof undiciErrors.UndiciError || err instanceof undiciErrors.HTTPParserError) {
    return { status: 502, headers: {}, body: { error: { code: "upstream_unreachable", message: "upstream failed" } } };
  }
  // zlib only decodes upstream answers (src/redaction/response.ts): a body that does not decode as its
  // coding says (corrupt, raw deflate, trailing bytes) is the upstream's fault, refused before anything went out.
  if (isZlibError(err)) {
    return { status: 502, headers: {}, body: { error: { code: "upstream_unreachable", message: "the upstream's answer could not be decoded" } } };
  }
  const fastifyError = err as Partial<FastifyError>;
  const known = fastifyError.code ? FASTIFY_CLIENT_ERRORS[fastifyError.code] : undefined;
  if (known) return { status: known.status, headers: {}, body: { error: { code: known.code, message: known.message } } };
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { status: fastifyError.statusCode, headers: {}, body: { error: { code: "bad_request", message: "bad request" } } };
  }
  return { status: 500, headers: {}, body: { error: { code: "internal_error", message: "internal error" } } };
}

/**
 * Marks an error as the broker's own, so that a client of the proxy (src/sdk) can tell Keyward's refusal
 * from the upstream's answer; the proxy drops it from upstream responses (src/proxy/headers.ts).
 */
export const BROKER_ERROR_HEADER = "keyward-error";

/**
 * The one place errors become HTTP responses. A refusal (4xx) is logged at `refusals`: "info" where the
 * log is the record of requests, "debug" in a scope whose refusals are audit events already (the proxy).
 */
export function setErrorResponses(scope: FastifyInstance, refusals: "info" | "debug"): void {
  scope.setErrorHandler((err, request, reply) => {
    const { status, body, headers } = toErrorResponse(err);
    logErrorResponse(request, err, { status, code: body.error.code }, refusals);
    dropHeadersOfFailedAnswer(reply);
    return reply.code(status).headers(headers).header(BROKER_ERROR_HEADER, body.error.code).send(body);
  });
}

/** What a route set for its own answers and keeps on its errors: they must not be cached either. */
const KEPT_ON_ERROR = new Set(["cache-control", "pragma"]);

/**
 * An answer that failed before its first byte went out (an upstream's body that stalled or broke before
 * any of it was relayed) still holds the headers set for it, the upstream's Content-Type, Set-Cookie and
 * ETag among them: its error goes out with none of them. (Under a text/plain Content-Type Fastify would
 * not send the error's JSON at all, and answered 500 instead of 504.)
 */
function dropHeadersOfFailedAnswer(reply: FastifyReply): void {
  for (const name of Object.keys(reply.getHeaders())) if (!KEPT_ON_ERROR.has(name)) reply.removeHeader(name);
}

/**
 * How an error answered is logged, wherever it is answered (here, or in an upstream's own dialect by the
 * proxy): a failure (5xx) at "error" with the error and its cause, which the client is never sent; a
 * refusal at `refusals`.
 */
export function logErrorResponse(request: FastifyRequest, err: unknown, sent: { status: number; code: string }, refusals: "info" | "debug"): void {
  if (sent.status >= 500) request.log.error({ err }, "request failed");
  else request.log[refusals]({ code: sent.code, status: sent.status }, "request refused");
}

/** Error responses for the whole app, and its 404 for unknown routes. */
export function registerErrorHandling(app: FastifyInstance): void {
  setErrorResponses(app, "info");
  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).send({ error: { code: "not_found", message: "route not found" } }),
  );
}
