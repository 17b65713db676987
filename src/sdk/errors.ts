/**
 * The header the broker sets on its own error responses (src/http/error-handler.ts) and strips from
 * upstream responses: through the proxy, it tells Keyward's refusal from the upstream's own error.
 */
export const BROKER_ERROR_HEADER = "keyward-error";

import type { ErrorCode } from "./codes.js";

/**
 * A code from the catalogue (docs/errors.md), or one this SDK does not know yet (a newer broker's, or
 * `http_<status>` for an answer without one): switch on the known ones, treat the rest as refusals.
 */
export type KeywardErrorCode = ErrorCode | (string & {});

/** An error answered by the broker: `code` says why (docs/errors.md), `reason` the specifics. */
export class KeywardApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: KeywardErrorCode,
    message: string,
    readonly reason?: string,
    readonly details?: unknown,
  ) {
    super(reason ? `${message}: ${reason}` : message);
    this.name = new.target.name;
  }
}

/** Refused by policy: the grant or the token does not allow it, a budget is spent, or a human said no. */
export class Denied extends KeywardApiError {}

/** The token was revoked, or every token is frozen by the kill switch: stop rather than retry. */
export class Revoked extends KeywardApiError {}

/** A human must approve the token request first; asking `Keyward.token` again with the same request polls it. */
export class NeedsApproval extends KeywardApiError {
  constructor(
    readonly approvalId: string,
    readonly expiresAt: Date,
  ) {
    super(202, "approval_required", "a human must approve this token request", `approval ${approvalId} is pending`);
  }
}

const REVOKED_CODES = new Set<string>(["token_revoked", "kill_switch_engaged"] satisfies ErrorCode[]);

/** The typed error for an error response: Keyward's `{ error: { code, message, reason?, details? } }`, or RFC 6749's. */
export function errorFrom(status: number, body: unknown, brokerCode?: string | null): KeywardApiError {
  const error = (body as { error?: unknown } | null)?.error;
  if (typeof error === "string") {
    const description = (body as { error_description?: unknown }).error_description;
    return new KeywardApiError(status, error, typeof description === "string" ? description : error);
  }
  const fields = (typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string"
    ? error
    : nativeFields(body, brokerCode)) as { code?: unknown; message?: unknown; reason?: unknown; details?: unknown };
  if (typeof fields.code !== "string") return new KeywardApiError(status, `http_${status}`, `the broker answered ${status}`);
  const message = typeof fields.message === "string" ? fields.message : fields.code;
  const reason = typeof fields.reason === "string" ? fields.reason : undefined;
  const args = [status, fields.code, message, reason, fields.details] as const;
  if (REVOKED_CODES.has(fields.code)) return new Revoked(...args);
  if (status === 403 || status === 429) return new Denied(...args);
  return new KeywardApiError(...args);
}

/** Reads a failed response into its typed error. */
export async function errorOf(response: Response): Promise<KeywardApiError> {
  const text = await response.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: errorFrom falls back to the status
  }
  return errorFrom(response.status, body, response.headers.get(BROKER_ERROR_HEADER));
}

/**
 * A refusal the broker answered in the upstream's protocol (GraphQL errors, a JSON-RPC error, AWS XML):
 * its code is in the keyward-error header, its message and reason in the protocol's own fields.
 */
function nativeFields(body: unknown, brokerCode: string | null | undefined): { code?: string; message?: string; reason?: string } {
  if (!brokerCode) return {};
  const first = (Array.isArray(body) ? body[0] : body) as Record<string, unknown> | null | undefined;
  const graphqlError = Array.isArray(first?.errors) ? (first.errors[0] as { message?: unknown; extensions?: { reason?: unknown } }) : undefined;
  const rpcError = first?.error as { message?: unknown; data?: { reason?: unknown } } | undefined;
  const message = graphqlError?.message ?? rpcError?.message;
  const reason = graphqlError?.extensions?.reason ?? rpcError?.data?.reason;
  return {
    code: brokerCode,
    message: typeof message === "string" ? message : `the broker refused the call (${brokerCode})`,
    ...(typeof reason === "string" && { reason }),
  };
}
