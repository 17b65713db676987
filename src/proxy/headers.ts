import type { IncomingHttpHeaders } from "node:http";
import { BROKER_ERROR_HEADER } from "../http/error-handler.js";

// RFC 9110 §7.6.1 hop-by-hop headers, plus headers that would let an agent speak for the broker.
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
  "transfer-encoding", "upgrade",
]);
const NEVER_FROM_AGENT = new Set([
  "host", "authorization", "cookie", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host",
  "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "x-http-method-override", "x-http-method",
  "x-method-override",
  // Path and method overrides some servers and frameworks honour: they would let an agent reach a
  // resource or use a method other than the one the policy decided on.
  "x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
  // Byte ranges: every answer is redacted (src/redaction), one answer at a time, and a secret the upstream
  // echoes could be read a few bytes per call, in pieces too short to recognise. Without them the upstream
  // sends the whole body, which HTTP allows a server to do for any range request (RFC 9110 §14.2).
  "range", "if-range",
]);
/** Every X-Forwarded-* header claims a forwarding identity (-server, -prefix, -uri, -method, -ssl, ...). */
const isForwardingHeader = (name: string) => name.startsWith("x-forwarded-");

// What nearly every request and response says: no set to build per call.
const NONE_LISTED = new Set<string>();
const KEEP_ALIVE_LISTED = new Set(["keep-alive"]);
const CLOSE_LISTED = new Set(["close"]);

/** Headers named by the Connection header are hop-by-hop too. */
function connectionListed(headers: IncomingHttpHeaders): ReadonlySet<string> {
  const value = headers.connection;
  if (value === undefined) return NONE_LISTED;
  if (value === "keep-alive" || value === "Keep-Alive") return KEEP_ALIVE_LISTED;
  if (value === "close") return CLOSE_LISTED;
  const listed = (Array.isArray(value) ? value.join(",") : value).split(",");
  return new Set(listed.map((h) => h.trim().toLowerCase()).filter(Boolean));
}

/**
 * The agent's headers as they may go upstream: no hop-by-hop headers, none of the agent's own
 * credentials, nothing that overrides the method or claims a forwarding identity, and none of the
 * headers the upstream's credential kind owns (the injector sets those).
 */
export function requestHeadersForUpstream(headers: IncomingHttpHeaders, ownedByCredential: readonly string[]): Record<string, string> {
  const dropped = connectionListed(headers);
  const out: Record<string, string> = {};
  // Names, then each value: Object.entries made an array per header, and every call comes through here.
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || NEVER_FROM_AGENT.has(name) || dropped.has(name)) continue;
    if (isForwardingHeader(name) || ownedByCredential.includes(name)) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** The upstream's response headers as they may go back to the agent. */
export function responseHeadersForAgent(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const dropped = connectionListed(headers as IncomingHttpHeaders);
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    // Only the broker marks its own refusals: an upstream cannot pass its errors off as the broker's.
    if (value === undefined || HOP_BY_HOP.has(name) || dropped.has(name) || name === BROKER_ERROR_HEADER) continue;
    out[name] = value;
  }
  return out;
}
