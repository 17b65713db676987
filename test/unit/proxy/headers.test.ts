import { describe, expect, it } from "vitest";
import type { IncomingHttpHeaders } from "node:http";
import { requestHeadersForUpstream, responseHeadersForAgent } from "../../../src/proxy/headers.js";
import { title } from "../../security/cases.js";

describe("requestHeadersForUpstream", () => {
  const noneOwned = () => false;
  const owns = (...names: string[]) => (name: string) => names.includes(name);
  const kept: [string, string][] = [
    ["content-type", "application/json"],
    ["content-length", "12"],
    ["accept", "application/json"],
    ["accept-encoding", "gzip"],
    ["accept-language", "en"],
    ["user-agent", "agent/1.0"],
    ["if-none-match", '"abc"'],
    ["if-match", '"abc"'],
    ["idempotency-key", "k-1"],
    ["x-request-id", "r-1"],
    ["x-custom", "v"],
    // names that merely resemble dropped ones
    ["x-forwarded", "v"],
    ["hostname", "v"],
    ["authorization-hint", "v"],
    ["cookies-ok", "v"],
    ["x-api-key", "agent-own-key"],
  ];
  it.each(kept)("keeps %s", (name, value) => {
    expect(requestHeadersForUpstream({ [name]: value }, noneOwned)).toEqual({ [name]: value });
  });

  const dropped: [string, string][] = [
    // hop-by-hop
    ["connection", "keep-alive"],
    ["keep-alive", "timeout=5"],
    ["proxy-connection", "keep-alive"],
    ["proxy-authenticate", "Basic"],
    ["proxy-authorization", "Basic dXNlcjpwYXNz"],
    ["te", "trailers"],
    ["trailer", "x-checksum"],
    ["transfer-encoding", "chunked"],
    ["upgrade", "websocket"],
    // the agent's own credentials and identity
    ["authorization", "Bearer agent-jwt"],
    ["cookie", "session=abc"],
    ["host", "keyward.local"],
    ["expect", "100-continue"],
    // forwarding identity
    ["forwarded", "for=1.2.3.4;host=evil"],
    ["x-forwarded-for", "1.2.3.4"],
    ["x-forwarded-host", "evil.test"],
    ["x-forwarded-proto", "https"],
    ["x-forwarded-port", "443"],
    ["x-forwarded-server", "evil"],
    ["x-forwarded-prefix", "/admin"],
    ["x-forwarded-uri", "/admin/delete"],
    ["x-forwarded-method", "DELETE"],
    ["x-forwarded-ssl", "on"],
    ["x-forwarded-scheme", "https"],
    ["x-forwarded-user", "root"],
    ["x-real-ip", "127.0.0.1"],
    // method overrides
    ["x-http-method-override", "DELETE"],
    ["x-http-method", "DELETE"],
    ["x-method-override", "DELETE"],
    ["x-original-method", "DELETE"],
    // path overrides
    ["x-original-url", "/admin/delete"],
    ["x-rewrite-url", "/admin/delete"],
    ["x-original-uri", "/admin/delete"],
    // byte ranges: an echoed secret read a few bytes at a time would escape redaction (SEC-03)
    ["range", "bytes=0-10"],
    ["if-range", '"abc"'],
    ["request-range", "bytes=0-10"],
    ["x-ms-range", "bytes=0-10"],
  ];
  it.each(dropped)("drops %s", (name, value) => {
    expect(requestHeadersForUpstream({ [name]: value, "x-keep": "1" }, noneOwned)).toEqual({ "x-keep": "1" });
  });

  // CGI-style servers (Rack on Puma, WSGI, PHP) read `X_HTTP_METHOD_OVERRIDE` as X-HTTP-Method-Override.
  const underscored = [
    "x_http_method_override", "x_http_method", "x_method_override", "x_original_method", "x_original_url", "x_rewrite_url",
    "x_original_uri", "x_forwarded_host", "x_forwarded_for", "x_forwarded_prefix", "x-forwarded_proto", "x_real_ip",
    "transfer_encoding", "proxy_authorization", "keep_alive",
    // headers the decision read the body by: only their own spelling goes
    "content_type", "content_encoding", "content_length",
  ];
  it.each(underscored)(`${title("REQ-36")}: drops %s`, (name) => {
    expect(requestHeadersForUpstream({ [name]: "x", "x-keep": "1" }, noneOwned)).toEqual({ "x-keep": "1" });
  });
  it(`${title("REQ-36")}: ordinary underscore names go, and content headers in their own spelling`, () => {
    const headers = { "x_trace_id": "t", "my_header": "v", "x_forwarded": "v", "content-type": "application/json", "content-length": "2" };
    expect(requestHeadersForUpstream(headers, noneOwned)).toEqual(headers);
  });
  it(`${title("REQ-36")}: a credential's header is dropped in either spelling`, () => {
    const headers = { "x_api_key": "agent-guess", "x-api-key": "agent-guess", "x-other": "3" };
    expect(requestHeadersForUpstream(headers, owns("x-api-key"))).toEqual({ "x-other": "3" });
  });

  it("a Connection of just keep-alive or close (what nearly every client sends) names that and nothing else", () => {
    const cases: [string, Record<string, string>][] = [
      ["keep-alive", { close: "1", "x-hop": "2" }],
      ["Keep-Alive", { close: "1", "x-hop": "2" }],
      ["close", { "x-hop": "2" }],
      ["Close", { "x-hop": "2" }],
      ["keep-alive, x-hop", { close: "1" }],
    ];
    for (const [connection, forwarded] of cases) {
      const headers = { connection, "keep-alive": "timeout=5", close: "1", "x-hop": "2", "x-kept": "3" };
      expect(requestHeadersForUpstream(headers, noneOwned), connection).toEqual({ ...forwarded, "x-kept": "3" });
    }
  });

  it("drops headers named in Connection (any case, spacing, repeated)", () => {
    const headers: IncomingHttpHeaders = {
      connection: "close, X-Secret-Hop ,x-other,,  ",
      "x-secret-hop": "1",
      "x-other": "2",
      "x-kept": "3",
    };
    expect(requestHeadersForUpstream(headers, noneOwned)).toEqual({ "x-kept": "3" });
  });

  it("drops headers named in a Connection header given as an array", () => {
    const headers = { connection: ["x-a", "X-B"], "x-a": "1", "x-b": "2", "x-c": "3" } as unknown as IncomingHttpHeaders;
    expect(requestHeadersForUpstream(headers, noneOwned)).toEqual({ "x-c": "3" });
  });

  it("Connection cannot be used to smuggle a dropped header back in", () => {
    const headers: IncomingHttpHeaders = { connection: "x-a", authorization: "Bearer t", "x-a": "1" };
    expect(requestHeadersForUpstream(headers, noneOwned)).toEqual({});
  });

  it("drops the headers the upstream's credential owns", () => {
    const headers: IncomingHttpHeaders = { "x-api-key": "agent-guess", "api-key": "2", "x-other": "3" };
    expect(requestHeadersForUpstream(headers, owns("x-api-key", "api-key"))).toEqual({ "x-other": "3" });
  });

  it("drops nothing extra when no credential header is owned", () => {
    expect(requestHeadersForUpstream({ "x-api-key": "a" }, noneOwned)).toEqual({ "x-api-key": "a" });
  });

  it("joins repeated values with a comma and skips undefined ones", () => {
    const headers = { "x-multi": ["a", "b"], "x-none": undefined, accept: "text/plain" } as IncomingHttpHeaders;
    expect(requestHeadersForUpstream(headers, noneOwned)).toEqual({ "x-multi": "a, b", accept: "text/plain" });
  });

  it("a realistic request keeps exactly its ordinary headers", () => {
    const headers: IncomingHttpHeaders = {
      host: "keyward:8080",
      authorization: "Bearer eyJ...",
      "content-type": "application/json",
      "content-length": "17",
      accept: "*/*",
      connection: "keep-alive, x-trace",
      "x-trace": "t",
      "keep-alive": "timeout=5",
      "x-forwarded-for": "10.0.0.1",
      "x-api-key": "agent-supplied",
      "user-agent": "curl/8",
    };
    expect(requestHeadersForUpstream(headers, owns("x-api-key"))).toEqual({
      "content-type": "application/json",
      "content-length": "17",
      accept: "*/*",
      "user-agent": "curl/8",
    });
  });

  it("does not modify its input", () => {
    const headers: IncomingHttpHeaders = { authorization: "Bearer t", accept: "a" };
    requestHeadersForUpstream(headers, noneOwned);
    expect(headers).toEqual({ authorization: "Bearer t", accept: "a" });
  });
});

describe("responseHeadersForAgent", () => {
  const hopByHop = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];
  it.each(hopByHop)("drops %s", (name) => {
    expect(responseHeadersForAgent({ [name]: "x", "content-type": "text/plain" })).toEqual({ "content-type": "text/plain" });
  });

  it("drops headers named in Connection", () => {
    expect(responseHeadersForAgent({ connection: "close, X-Internal", "x-internal": "1", etag: '"e"' })).toEqual({ etag: '"e"' });
  });

  it("keeps ordinary headers, arrays as arrays, and skips undefined", () => {
    const headers = {
      "content-type": "application/json",
      "content-length": "2",
      "set-cookie": ["a=1", "b=2"],
      location: "/v1/next",
      "www-authenticate": "Bearer",
      "x-ratelimit-remaining": "9",
      "x-undefined": undefined,
    };
    expect(responseHeadersForAgent(headers)).toEqual({
      "content-type": "application/json",
      "content-length": "2",
      "set-cookie": ["a=1", "b=2"],
      location: "/v1/next",
      "www-authenticate": "Bearer",
      "x-ratelimit-remaining": "9",
    });
  });
});
