import { ERROR_CODES, type ErrorCode } from "../sdk/codes.js";

export { ERROR_CODES, type ErrorCode } from "../sdk/codes.js";

/**
 * The closed set of errors Keyward answers with, each code from the catalogue (src/sdk/codes.ts). Every
 * error a client sees is one of these; anything else becomes a bare 500 `internal_error`
 * (src/http/error-handler.ts), so no internal text leaks.
 */
export class KeywardError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly extra: { details?: unknown; reason?: string; headers?: Record<string, string> } = {},
  ) {
    // A refusal (4xx) is an expected answer, made on every denied call: its stack would say nothing and
    // costs more than the rest of the error. A 5xx keeps its stack.
    const stackTraceLimit = Error.stackTraceLimit;
    if (status < 500) Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = "KeywardError";
  }
}

export const badRequest = (code: ErrorCode, message: string, details?: unknown) =>
  new KeywardError(400, code, message, { details });

export const validationFailed = (details: unknown) =>
  new KeywardError(400, "validation_failed", "request did not match the schema", { details });

/** The protection space of Keyward's bearer tokens and admin keys (RFC 6750 §3). */
export const BEARER_REALM = "keyward";

/** 401 for the agent-facing and admin-facing auth schemes alike; the message never echoes the credential. */
export const unauthenticated = (code: ErrorCode, message: string) =>
  new KeywardError(401, code, message, { headers: { "www-authenticate": `Bearer realm="${BEARER_REALM}", error="invalid_token"` } });

/**
 * 401 for a request with no credentials at all: RFC 6750 §3.1 says such a challenge names no error
 * code, so a client knows to authenticate rather than that its token is bad.
 */
export const credentialsMissing = (message: string) =>
  new KeywardError(401, "unauthenticated", message, { headers: { "www-authenticate": `Bearer realm="${BEARER_REALM}"` } });

export const forbidden = (reason: string, code: ErrorCode = "forbidden") =>
  new KeywardError(403, code, "request denied", { reason });

/**
 * A refusal with its code's status from the catalogue: the agent reads `code` to know why (decide()'s
 * code, not a generic "forbidden"), `reason` for the specifics.
 */
export const refused = (code: ErrorCode, reason: string) => new KeywardError(ERROR_CODES[code].status, code, ERROR_CODES[code].meaning, { reason });

export const notFound = (what: string) => new KeywardError(404, "not_found", `${what} not found`);

export const conflict = (message: string) => new KeywardError(409, "conflict", message);

export const payloadTooLarge = (limit: number) =>
  new KeywardError(413, "payload_too_large", `request body exceeds ${limit} bytes`);

export const unavailable = (code: ErrorCode, message: string) => new KeywardError(503, code, message);

/** What every endpoint answers while the database does not (a failed query, or the audit log refusing). */
export const databaseUnavailable = () => unavailable("database_unavailable", "database unavailable; try again");

export const badGateway = (message: string) => new KeywardError(502, "upstream_unreachable", message);

export const gatewayTimeout = (message: string) => new KeywardError(504, "upstream_timeout", message);

/**
 * 502 when the broker cannot obtain the upstream's credential (its token endpoint is down, refuses, or
 * answers nonsense). The request is not sent. `detail` goes to the broker's log as the cause, never to
 * the agent, and never names a secret or a token.
 */
export const credentialUnavailable = (detail: string) => {
  const err = new KeywardError(502, "upstream_credential_unavailable", "could not obtain a credential for the upstream");
  err.cause = new Error(detail);
  return err;
};

/**
 * 429 when a budget is spent. Retry-After says when a per-minute budget refills; a lifetime budget
 * (total or destructive calls) never does, so it gets none.
 */
export const tooManyRequests = (reason: string, retryAfterSeconds: number | null) =>
  new KeywardError(429, "budget_exceeded", "budget exceeded", {
    reason,
    ...(retryAfterSeconds !== null && { headers: { "retry-after": String(retryAfterSeconds) } }),
  });

/**
 * 403 while a token request waits for a human (src/approvals). `POST /v1/tokens` answers it as
 * `202 { approvalId }`; any other issuing route that does not know approvals refuses with it.
 */
export const approvalRequired = (approvalId: string, expiresAt: Date) =>
  new KeywardError(403, "approval_required", "a human must approve this request", {
    reason: "approval required",
    details: { approvalId, expiresAt: expiresAt.toISOString() },
  });

/** 407 from the forward proxy (src/forward-proxy): no usable agent token in Proxy-Authorization. */
export const proxyAuthenticationRequired = (message: string) =>
  new KeywardError(407, "proxy_authentication_required", message, {
    headers: { "proxy-authenticate": 'Basic realm="keyward", Bearer realm="keyward"' },
  });

/** 403 from the forward proxy: no upstream names this scheme, host and port (and path). */
export const hostNotAllowed = (authority: string) =>
  new KeywardError(403, "forward_host_not_allowed", "no upstream is configured for this host", { reason: `no upstream for ${authority}` });
