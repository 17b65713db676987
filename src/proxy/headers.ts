import type { IncomingHttpHeaders } from "node:http";
import { BROKER_ERROR_HEADER } from "../http/error-handler.js";

// RFC 9110 §7.6.1 hop-by-hop headers, plus headers that would let an agent speak for the broker.
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
  "transfer-encoding", "upgrade",
]);
const SPEAKS_FOR_BROKER = new Set([
  "host", "expect", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
  "x-real-ip", "x-http-method-override", "x-http-method", "x-method-override",
  // Path and method overrides some servers and frameworks honour: they would let an agent reach a
  // resource or use a method other than the one the policy decided on.
  "x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
]);
const NEVER_FROM_AGENT = new Set([
  ...SPEAKS_FOR_BROKER,
  // The agent's own credentials: the upstream's is injected instead.
  "authorization", "cookie",
  // Byte ranges: every answer is redacted (src/redaction), one answer at a time, and a secret the upstream
  // echoes could be read a few bytes per call, in pieces too short to recognise. Without them the upstream
  // sends the whole body, which HTTP allows a server to do for any range request (RFC 9110 §14.2). Servers
  // read ranges from other headers too: Apache httpd from Request-Range when there is no Range, Azure
  // Storage from x-ms-range.
  "range", "if-range", "request-range", "x-ms-range",
]);
/** Every X-Forwarded-* header claims a forwarding identity (-server, -prefix, -uri, -method, -ssl, ...). */
const isForwardingHeader = (name: string) => name.startsWith("x-forwarded-");
/**
 * Headers the decision read the body by. In another spelling they could make the upstream read a body
 * other than the one decided on (Puma reads `Content_Type` as the Content-Type), so only theirs is sent.
 */
const DECIDED_ON = new Set(["content-type", "content-encoding", "content-length"]);

/**
 * A header as CGI-style servers name it (Rack on Puma, WSGI, PHP): `HTTP_` + upper case, `-` as `_`, so
 * `X_HTTP_METHOD_OVERRIDE` reaches the application as `X-HTTP-Method-Override` does. A name is judged in
 * its hyphenated spelling; Node has lower-cased it already.
 */
const hyphenated = (name: string) => name.replace(/_/g, "-");

/**
 * Whether a header is the broker's to set, whoever else would: hop-by-hop and framing headers, the body
 * headers the decision read, the host, forwarding identities, method and path overrides; in any case and
 * in either spelling. An upstream's credential may not be injected as one (src/upstreams/credentials/header.ts):
 * a second Content-Length smuggles a request, an X-Forwarded-For speaks for the broker.
 */
export function isBrokersHeader(name: string): boolean {
  const spelled = hyphenated(name.toLowerCase());
  return HOP_BY_HOP.has(spelled) || SPEAKS_FOR_BROKER.has(spelled) || isForwardingHeader(spelled) || DECIDED_ON.has(spelled);
}

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
 * headers the upstream's credential kind owns (the injector sets those), in either spelling a CGI-style
 * server reads them by; nor an underscore spelling of a header the decision read.
 */
export function requestHeadersForUpstream(headers: IncomingHttpHeaders, ownedByCredential: (name: string) => boolean): Record<string, string> {
  const dropped = connectionListed(headers);
  const out: Record<string, string> = {};
  // Names, then each value: Object.entries made an array per header, and every call comes through here.
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || dropped.has(name)) continue;
    // Nearly no header has an underscore: only those pay for a second spelling.
    const spelled = name.includes("_") ? hyphenated(name) : name;
    if (HOP_BY_HOP.has(spelled) || NEVER_FROM_AGENT.has(spelled) || isForwardingHeader(spelled) || ownedByCredential(spelled)) continue;
    if (spelled !== name && DECIDED_ON.has(spelled)) continue;
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
