/**
 * The closed catalogue of Keyward's error codes: every `error.code` a client can read (and every OAuth
 * `error` the token endpoints answer with) is one of these, with the one HTTP status it comes with, a
 * one-line meaning, and the step that raises it. The broker's errors (src/http/errors.ts), decide(), the
 * proxy, the token endpoints, the audit log (a refused call's event carries its code in `reason`), the
 * SDK, the MCP tool, the console's filters and docs/errors.md all read this one table.
 *
 * It lives with the SDK because it ships to agents: `import type { ErrorCode } from "keyward/sdk"`.
 * Pure data, no imports, so that the SDK's own build (tsconfig.sdk.json) can include it.
 *
 * Codes are stable: add new ones, never rename or reuse one. docs/errors.md is generated from this
 * table (`npx tsx src/http/error-docs.ts --write`); a test fails while it is out of date.
 */

/** Where in Keyward a code is raised; the proxy's steps in the order a call walks them. */
export const STEPS = {
  request: "any route, before its handler runs: the request itself is malformed",
  authenticate: "proxy step 1: the agent's bearer token is checked",
  revocation: "proxy step 2: revocations and the kill switch are checked",
  resolve: "proxy step 3: the upstream named in the URL is looked up",
  prepare: "proxy step 3b: the call is prepared for the decision (path, method override, body to inspect)",
  decide: "proxy step 4: decide() checks the call against the token and its grant as it stands now",
  budget: "proxy step 4b: the grant's budgets are taken",
  audit: "proxy step 5: the decision is written to the audit log before anything is forwarded",
  credential: "proxy step 6: the upstream's credential is obtained and injected",
  forward: "proxy step 7: the call is forwarded to the upstream",
  token: "the token endpoints (POST /oauth2/token, POST /v1/tokens, introspection, revocation)",
  approval: "human approval of token requests (src/approvals)",
  admin: "the admin API (/v1/...): admin keys, roles and the objects they manage",
  server: "the broker itself: database, readiness, internal failures",
  sdk: "raised by the SDK in the agent's process, never sent by the broker",
  "forward-proxy": "the forward proxy listener (KEYWARD_FORWARD_PROXY_PORT): before a request is handed to the proxy route",
} as const;

export type Step = keyof typeof STEPS;

type Entry = { readonly status: number; readonly step: Step; readonly meaning: string };

export const ERROR_CODES = {
  // forward proxy (transparent mode)
  proxy_authentication_required: { status: 407, step: "forward-proxy", meaning: "the forward proxy needs an agent token in Proxy-Authorization (Bearer, or Basic with the token as password)" },
  forward_host_not_allowed: { status: 403, step: "forward-proxy", meaning: "no upstream is configured for the host and port the request names" },
  invalid_connect_target: { status: 400, step: "forward-proxy", meaning: "CONNECT names no host:port" },
  invalid_request_target: { status: 400, step: "forward-proxy", meaning: "the request URL names no valid host, or, inside a tunnel, another origin than the tunnel's" },
  use_connect: { status: 400, step: "forward-proxy", meaning: "an https:// target must be reached through CONNECT" },
  absolute_form_required: { status: 400, step: "forward-proxy", meaning: "a forward proxy request must name an absolute http:// URL" },
  host_mismatch: { status: 400, step: "forward-proxy", meaning: "the Host header names another origin than the request or the tunnel" },
  upgrade_not_supported: { status: 400, step: "forward-proxy", meaning: "protocol upgrades (WebSocket) are not proxied" },
  // request
  validation_failed: { status: 400, step: "request", meaning: "the request did not match the route's schema; details lists each problem" },
  invalid_json: { status: 400, step: "request", meaning: "the request body is not valid JSON, or is empty" },
  bad_request: { status: 400, step: "request", meaning: "the request is malformed (e.g. an invalid Content-Length)" },
  invalid_url: { status: 400, step: "request", meaning: "the request URL cannot be decoded or is not /proxy/<upstream>/<path>" },
  request_aborted: { status: 400, step: "request", meaning: "the client stopped sending the request body" },
  not_found: { status: 404, step: "request", meaning: "no such route, or the object named in the URL does not exist" },
  method_not_supported: { status: 405, step: "request", meaning: "the route exists but not for this HTTP method; Allow lists the ones it takes" },
  request_timeout: { status: 408, step: "request", meaning: "the request was not received in time" },
  payload_too_large: { status: 413, step: "request", meaning: "the request body exceeds the configured limit (or the inspection limit)" },
  unsupported_media_type: { status: 415, step: "request", meaning: "the request's Content-Type is not one this route reads" },
  headers_too_large: { status: 431, step: "request", meaning: "the request headers are too large" },

  // proxy step 1
  unauthenticated: { status: 401, step: "authenticate", meaning: "no usable Authorization header (missing, repeated, or not the expected scheme)" },
  invalid_token: { status: 401, step: "authenticate", meaning: "the bearer token is malformed, or its signature, issuer or audience is wrong" },
  token_expired: { status: 401, step: "authenticate", meaning: "the bearer token has expired: request a new one" },
  // proxy step 2
  token_revoked: { status: 401, step: "revocation", meaning: "the token, its agent, grant, upstream or environment was revoked" },
  kill_switch_engaged: { status: 403, step: "revocation", meaning: "the kill switch is engaged: every agent token is frozen" },
  revocation_state_stale: { status: 503, step: "revocation", meaning: "the broker cannot confirm its revocation state is current; retry later" },
  // proxy step 3b
  invalid_path: { status: 403, step: "prepare", meaning: "the path is ambiguous (dot segments, encoded slashes, control characters...)" },
  method_override: { status: 403, step: "decide", meaning: "a query parameter, form field or top-level JSON member any common framework reads as a method override (_method, X-HTTP-Method-Override, ...), or a form or JSON body that cannot be checked for one (compressed, UTF-16)" },
  // proxy step 4: decide()
  grant_gone: { status: 403, step: "decide", meaning: "the token's grant no longer exists" },
  agent_not_in_grant: { status: 403, step: "decide", meaning: "the agent is no longer one of the grant's agents" },
  wrong_upstream: { status: 403, step: "decide", meaning: "the token is for another upstream" },
  environment_not_granted: { status: 403, step: "decide", meaning: "the grant does not cover the upstream's environment (also refused when a token is requested)" },
  approval_required: { status: 403, step: "decide", meaning: "a human must approve the token first (POST /v1/tokens answers 202 with the approval instead)" },
  method_not_granted: { status: 403, step: "decide", meaning: "the token or the grant does not allow this HTTP method" },
  deny_rule: { status: 403, step: "decide", meaning: "one of the grant's deny rules matches the call (deny rules win)" },
  path_not_granted: { status: 403, step: "decide", meaning: "the token or the grant does not allow this path" },
  protected_operation: { status: 403, step: "decide", meaning: "the call performs an operation a protection preset guards, and the grant does not name it" },
  rules_misfit: { status: 403, step: "decide", meaning: "the grant's GraphQL or JSON-RPC rules do not fit the upstream's protocol" },
  uninspectable: { status: 403, step: "decide", meaning: "the body must be inspected and cannot be (not parseable, too many operations...)" },
  operation_denied: { status: 403, step: "decide", meaning: "a GraphQL or JSON-RPC operation in the call is denied, or no allow rule matches it" },
  // proxy step 4b
  budget_exceeded: { status: 429, step: "budget", meaning: "a budget of the grant is spent; Retry-After says when a per-minute one refills" },
  // proxy step 5
  audit_unavailable: { status: 503, step: "audit", meaning: "the audit log cannot be written, so nothing is forwarded; retry later" },
  // proxy steps 6 and 7
  upstream_credential_unavailable: { status: 502, step: "credential", meaning: "the broker could not obtain the upstream's credential; the call was not sent" },
  upstream_unreachable: { status: 502, step: "forward", meaning: "the upstream could not be reached or broke off its answer" },
  upstream_timeout: { status: 504, step: "forward", meaning: "the upstream did not answer in time" },
  upstream_encoding_unsupported: { status: 502, step: "forward", meaning: "the upstream answered in a content encoding Keyward cannot decode to redact secrets from it" },
  response_too_large_to_redact: { status: 502, step: "forward", meaning: "the grant's JSON or GraphQL redaction rules apply to the answer, and it is larger than Keyward reads whole to redact it (8 MiB)" },
  response_unredactable: { status: 502, step: "forward", meaning: "the grant's JSON or GraphQL redaction rules apply to the answer, and it is not the JSON (or GraphQL result) they select from" },

  // token endpoints (RFC 6749 section 5.2 and its extensions name these)
  invalid_request: { status: 400, step: "token", meaning: "the token request is malformed or misses a parameter" },
  invalid_client: { status: 401, step: "token", meaning: "client authentication failed (unknown client, wrong secret or assertion, disabled agent)" },
  invalid_grant: { status: 429, step: "token", meaning: "OAuth's error for a token exchange from a token whose call budget is spent (Keyward-Error: budget_exceeded)" },
  unauthorized_client: { status: 400, step: "token", meaning: "the client may not use this grant type or this token" },
  unsupported_grant_type: { status: 400, step: "token", meaning: "grant_type is not one Keyward supports" },
  invalid_scope: { status: 400, step: "token", meaning: "the scope names no grant of this agent, or is malformed" },
  invalid_target: { status: 400, step: "token", meaning: "the resource parameter (RFC 8707) names no upstream the grant covers" },
  invalid_authorization_details: { status: 400, step: "token", meaning: "authorization_details (RFC 9396) is malformed or asks for more than the grant" },
  not_in_grant: { status: 403, step: "token", meaning: "the agent is not one of the grant's agents" },
  client_auth_busy: { status: 503, step: "token", meaning: "too many client secrets are waiting to be verified (one is verified at a time); retry after Retry-After seconds" },
  widening_refused: { status: 403, step: "token", meaning: "the request asks for more than the grant (or the parent token) allows" },

  // approvals
  self_approval: { status: 403, step: "approval", meaning: "the requester cannot approve its own request" },
  approval_invalid: { status: 403, step: "approval", meaning: "the approval is not being collected for this grant" },
  too_many_pending_approvals: { status: 429, step: "approval", meaning: "the agent has as many token requests waiting for a human as it may; poll them (GET /v1/approvals/:id) until they are decided or expire" },

  // admin API
  forbidden: { status: 403, step: "admin", meaning: "the admin key's role does not have the permission this route needs" },
  conflict: { status: 409, step: "admin", meaning: "the change conflicts with an existing object (e.g. a name already in use, also when a concurrent request took it first)" },
  invalid_key: { status: 400, step: "admin", meaning: "a public key given for an agent is not usable for its algorithm" },
  unknown_reference: { status: 400, step: "admin", meaning: "the object refers to another that does not exist (an agent, an upstream...)" },
  policy_misfit: { status: 400, step: "admin", meaning: "the grant's rules do not fit its upstream (protocol, presets)" },

  // the broker itself
  database_unavailable: { status: 503, step: "server", meaning: "the database is unreachable or restarting; retry later" },
  not_ready: { status: 503, step: "server", meaning: "the broker is not ready to serve (GET /readyz lists which check fails)" },
  console_not_built: { status: 503, step: "server", meaning: "the web console's files were not built (npm run build:console)" },
  internal_error: { status: 500, step: "server", meaning: "an unexpected failure; the broker's log has the cause, the client gets no detail" },

  // the SDK, in the agent's process
  no_token: { status: 0, step: "sdk", meaning: "the SDK holds no token for this upstream: call token({ grant }) first" },
  approval_denied: { status: 403, step: "sdk", meaning: "a human denied the token request the SDK was waiting on" },
  unreachable: { status: 0, step: "sdk", meaning: "the SDK (or the Python client) could not reach the broker: refused, timed out, or cut off before an answer" },
  unexpected_answer: { status: 0, step: "sdk", meaning: "a 2xx answer that is not what the broker sends (not JSON, or a token answer without its fields): something else answered at the broker's URL" },
} as const satisfies Record<string, Entry>;

/** Every code Keyward answers with. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes decide() refuses a call with. */
export type DecisionCode = { [C in ErrorCode]: (typeof ERROR_CODES)[C]["step"] extends "decide" ? C : never }[ErrorCode];

/** The codes a proxied call can be refused with by Keyward itself (not the upstream), in any step. */
export type RefusalCode = {
  [C in ErrorCode]: (typeof ERROR_CODES)[C]["step"] extends "token" | "approval" | "admin" | "sdk" ? never : C;
}[ErrorCode];

export const isErrorCode = (code: string): code is ErrorCode => Object.hasOwn(ERROR_CODES, code);
