import { toErrorResponse } from "../http/error-handler.js";
import type { ErrorCode } from "../sdk/codes.js";

/** RFC 6749 §5.2 (and RFC 6750 §3.1, RFC 8693, RFC 9396) error codes, which OAuth clients act on. */
const OAUTH_ERRORS = new Set([
  "invalid_request",
  "invalid_client",
  "invalid_grant",
  "unauthorized_client",
  "unsupported_grant_type",
  "invalid_scope",
  "invalid_target",
  "invalid_authorization_details",
  "invalid_token",
  "insufficient_scope",
  "temporarily_unavailable",
  "server_error",
  "authorization_pending",
]);

/** Keyward's own codes as the OAuth endpoints mean them. */
const FROM_KEYWARD: Record<string, { status: number; error: string }> = {
  // An admin key missing or wrong at the introspection endpoint (RFC 7662 §2.3 → RFC 6750 §3.1).
  unauthenticated: { status: 401, error: "invalid_token" },
  forbidden: { status: 403, error: "insufficient_scope" },
  // The requested grant is unknown, not the agent's, or wider than allowed.
  not_found: { status: 400, error: "invalid_scope" },
  not_in_grant: { status: 400, error: "invalid_scope" },
  widening_refused: { status: 400, error: "invalid_scope" },
  // A human must approve the token first (src/approvals). RFC 8628 §3.5's code for "ask again later";
  // approval_id says what to poll (GET /v1/approvals/:id), as POST /v1/tokens' 202 does.
  approval_required: { status: 400, error: "authorization_pending" },
  // As many requests of the agent wait for a human as it may: the status says to come back later.
  too_many_pending_approvals: { status: 429, error: "invalid_request" },
  // Token exchange from a token whose call budget is spent: the child could make no call either. The
  // status stays 429, as on the proxy; the description names the spent limit.
  budget_exceeded: { status: 429, error: "invalid_grant" },
};

export type OAuthErrorBody = { error: string; error_description: string; approval_id?: string };

/**
 * error_description allows printable ASCII except `"` and `\` (RFC 6749 §5.2): quotes become plain
 * single quotes and typographic punctuation its ASCII spelling, so the text still reads; anything else is `?`.
 */
export const description = (text: string) =>
  text
    .replace(/["\u201c\u201d\u2018\u2019`]/g, "'")
    .replace(/\u2026/g, "...")
    .replace(/[\u2013\u2014]/g, "-")
    .replace(/\\/g, "/")
    .replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, "?")
    .slice(0, 500);

/**
 * The one place errors become OAuth error responses: Keyward's own mapping first (so validation and
 * framework errors are classified once), then its code translated. Only a 401 keeps its
 * WWW-Authenticate header. `code` is Keyward's own code, from the catalogue: RFC 6749's `error` folds
 * several into one (invalid_scope for an unknown grant, a grant the agent is not in, or widening), so
 * the routes send it in the Keyward-Error header, as every other route does, for the real reason.
 */
export function toOAuthErrorResponse(err: unknown): { status: number; body: OAuthErrorBody; headers: Record<string, string>; code: ErrorCode } {
  const keyward = toErrorResponse(err);
  const { code, message, reason, details } = keyward.body.error;
  const mapped = OAUTH_ERRORS.has(code)
    ? { status: code === "invalid_client" ? 401 : keyward.status, error: code }
    : (FROM_KEYWARD[code] ?? fallback(keyward.status));
  return {
    status: mapped.status,
    code,
    // A challenge (401) or the methods the endpoint takes (405); when to retry (503 client_auth_busy).
    headers: mapped.status === 401 || mapped.status === 405 ? keyward.headers : retryAfterOf(keyward.headers),
    body: {
      error: mapped.error,
      error_description: description(reason ? `${message}: ${reason}` : message),
      ...(code === "approval_required" && { approval_id: approvalIdOf(details) }),
    },
  };
}

const approvalIdOf = (details: unknown) => (details as { approvalId: string }).approvalId;

const retryAfterOf = (headers: Record<string, string>): Record<string, string> =>
  headers["retry-after"] === undefined ? {} : { "retry-after": headers["retry-after"] };

function fallback(status: number): { status: number; error: string } {
  if (status === 503) return { status, error: "temporarily_unavailable" };
  if (status >= 500) return { status: 500, error: "server_error" };
  // Malformed bodies, wrong content types, oversized requests: the status says which.
  return { status: status === 405 || status === 413 || status === 415 ? status : 400, error: "invalid_request" };
}
