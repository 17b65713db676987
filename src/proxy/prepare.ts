import type { ErrorCode } from "../sdk/codes.js";
import type { Headers } from "../policy/content.js";
import { bodyNeeded, type GrantPolicy, type ProxyRequest, type TargetPolicy, type TokenCapabilities } from "../policy/decide.js";
import { normalisePath, type NormalisedPath } from "../policy/paths.js";
import { parseProxyTarget, type ProxyTarget } from "./target.js";

/**
 * The steps between a raw call and decide(), shared by the proxy (src/proxy/plugin.ts) and the policy
 * simulator (src/policy/simulate.ts), so that the simulator cannot answer "allow" for a call the proxy
 * refuses before deciding. Pure: the caller looks up the upstream, the grant and the token, and reads
 * the body when `inspectLimit` says it must.
 */

export type CallRefusal = { ok: false; code: ErrorCode; reason: string };

const refuse = (code: ErrorCode, reason: string): CallRefusal => ({ ok: false, code, reason });

/** Step 0: which upstream, path and query the raw request line names (never the router's decoding). */
export function targetOf(rawUrl: string): { ok: true; target: ProxyTarget } | CallRefusal {
  const target = parseProxyTarget(rawUrl);
  return target ? { ok: true, target } : refuse("not_found", "the URL must be /proxy/<upstream>/<path>[?query]");
}

export type CallToPrepare = {
  target: ProxyTarget;
  method: string;
  /** Lower-case names, as Node gives them. */
  headers: Headers;
  /** The body's length as declared (Content-Length), or its actual length when it is already at hand. */
  bodyLength: number;
};

export type PreparedCall = {
  ok: true;
  target: ProxyTarget;
  method: string;
  path: NormalisedPath;
  headers: Headers;
  /**
   * When set, the call's operations must be inspected: read the body whole, refusing it beyond this many
   * bytes (payload_too_large), and give it to decisionRequest(). When null the body is not decided on.
   */
  inspectLimit: number | null;
};

export type PrepareLimits = {
  /** Largest body read whole to inspect its operations. */
  inspectMaxBytes: number;
  /** Largest body forwarded at all: an inspected body is held in memory, so the smaller limit applies. */
  maxBodyBytes: number;
};

/**
 * Step 3b, once the upstream and the grant are known: normalise the path (ambiguous paths are refused,
 * never guessed), and say whether the body must be read to decide (its operations, or a method override
 * in a form: decide() refuses overrides, src/policy/method-override.ts), within which limit.
 */
export function prepareCall(
  call: CallToPrepare,
  policy: { grant: GrantPolicy | null; target: TargetPolicy; token: TokenCapabilities },
  limits: PrepareLimits,
): PreparedCall | CallRefusal {
  const path = normalisePath(call.target.rawPath);
  if (!path.ok) return refuse("invalid_path", path.reason);
  const mustInspect = policy.grant !== null && bodyNeeded(policy.token, policy.grant, policy.target, call.method, call.headers, call.target.query);
  const inspectLimit = mustInspect ? Math.min(limits.inspectMaxBytes, limits.maxBodyBytes) : null;
  if (inspectLimit !== null && call.bodyLength > inspectLimit) {
    return refuse("payload_too_large", `request body exceeds ${inspectLimit} bytes`);
  }
  return { ok: true, target: call.target, method: call.method, path: path.path, headers: call.headers, inspectLimit };
}

/** What decide() is given for a prepared call: `body` is the inspected body (when inspectLimit was set). */
export function decisionRequest(call: PreparedCall, target: TargetPolicy, body: Uint8Array | undefined): ProxyRequest {
  return {
    upstream: call.target.upstream,
    method: call.method,
    path: call.path,
    target,
    query: call.target.query,
    headers: call.headers,
    body: call.inspectLimit === null ? undefined : (body ?? new Uint8Array(0)),
  };
}
