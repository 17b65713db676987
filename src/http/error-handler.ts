import type { FastifyError, FastifyInstance } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { KeywardError } from "./errors.js";

type ErrorBody = { error: { code: string; message: string; reason?: string; details?: unknown } };

/** Fastify's own errors that a client caused, by their stable codes. */
const FASTIFY_CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
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
  FST_ERR_BAD_URL: { status: 400, code: "invalid_path", message: "request path cannot be decoded" },
  FST_ERR_NOT_FOUND: { status: 404, code: "not_found", message: "route not found" },
};

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
  const fastifyError = err as Partial<FastifyError>;
  const known = fastifyError.code ? FASTIFY_CLIENT_ERRORS[fastifyError.code] : undefined;
  if (known) return { status: known.status, headers: {}, body: { error: { code: known.code, message: known.message } } };
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return { status: fastifyError.statusCode, headers: {}, body: { error: { code: "bad_request", message: "bad request" } } };
  }
  return { status: 500, headers: {}, body: { error: { code: "internal_error", message: "internal error" } } };
}

/** The one place errors become HTTP responses. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, request, reply) => {
    const { status, body, headers } = toErrorResponse(err);
    if (status >= 500) request.log.error({ err }, "request failed");
    else request.log.info({ code: body.error.code, status }, "request refused");
    return reply.code(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).send({ error: { code: "not_found", message: "route not found" } }),
  );
}
