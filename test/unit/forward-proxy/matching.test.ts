import { describe, expect, it } from "vitest";
import { parseAuthority, proxyAuthorizationToken } from "../../../src/forward-proxy/credentials.js";
import { handOffHeaders } from "../../../src/forward-proxy/hand-off.js";
import { HostIndex, originOf, type UpstreamOrigin } from "../../../src/forward-proxy/hosts.js";
import { absoluteHttpTarget, assertHostHeader, tunnelTarget } from "../../../src/forward-proxy/server.js";

const index = new HostIndex(
  [
    originOf("github", "https://api.github.com"),
    originOf("internal-v1", "https://internal.example:8443/api/v1"),
    originOf("internal", "https://internal.example:8443/api"),
    originOf("plain", "http://10.0.0.5:8080"),
  ].filter((o): o is UpstreamOrigin => o !== null),
);

describe("HostIndex.match", () => {
  it.each([
    ["https:", "api.github.com", 443, "/repos/a?x=1", { upstream: "github", proxyPath: "/proxy/github/repos/a?x=1" }],
    ["https:", "API.GITHUB.COM", 443, "/", { upstream: "github", proxyPath: "/proxy/github/" }],
    ["https:", "internal.example", 8443, "/api/v1/things", { upstream: "internal-v1", proxyPath: "/proxy/internal-v1/things" }],
    ["https:", "internal.example", 8443, "/api/v2", { upstream: "internal", proxyPath: "/proxy/internal/v2" }],
    ["https:", "internal.example", 8443, "/api", { upstream: "internal", proxyPath: "/proxy/internal/" }],
    ["https:", "internal.example", 8443, "/api?q", { upstream: "internal", proxyPath: "/proxy/internal/?q" }],
    ["http:", "10.0.0.5", 8080, "/x", { upstream: "plain", proxyPath: "/proxy/plain/x" }],
  ] as const)("%s//%s:%s%s → %o", (scheme, host, port, target, expected) => {
    expect(index.match(scheme, host, port, target)).toEqual(expected);
  });

  it.each([
    ["http:", "api.github.com", 443, "/repos"], // scheme differs
    ["https:", "api.github.com", 8443, "/repos"], // port differs
    ["https:", "evil.com", 443, "/repos"], // no upstream
    ["https:", "internal.example", 8443, "/apiv2"], // not under the base path at a segment boundary
    ["https:", "internal.example", 8443, "/other"],
    ["https:", "api.github.com", 443, "*"],
    ["https:", "api.github.com", 443, "http://api.github.com/"],
  ] as const)("%s//%s:%s%s → no match", (scheme, host, port, target) => {
    expect(index.match(scheme, host, port, target)).toBeNull();
  });

  it("hasOrigin: only scheme, host and port some upstream names", () => {
    expect(index.hasOrigin("https:", "api.github.com", 443)).toBe(true);
    expect(index.hasOrigin("https:", "api.github.com", 22)).toBe(false);
    expect(index.hasOrigin("https:", "10.0.0.5", 8080)).toBe(false);
  });

  it("tlsHosts: the https upstreams' hosts (what the CA may vouch for), each once, sorted; an http-only host is not one", () => {
    expect(index.tlsHosts).toEqual(["api.github.com", "internal.example"]);
    const withIp = new HostIndex([originOf("v6", "https://[::1]:9443"), originOf("B", "https://B.example")].filter((o): o is UpstreamOrigin => o !== null));
    expect(withIp.tlsHosts).toEqual(["::1", "b.example"]);
  });
});

describe("proxyAuthorizationToken", () => {
  const basic = (text: string) => "Basic " + Buffer.from(text).toString("base64");
  it.each([
    [["Proxy-Authorization", "Bearer a.b.c"], "a.b.c"],
    [["proxy-authorization", "bearer a.b.c"], "a.b.c"],
    [["Proxy-Authorization", basic("agent:a.b.c")], "a.b.c"],
    [["Proxy-Authorization", basic(":a.b.c")], "a.b.c"],
    [["Proxy-Authorization", basic("a.b.c")], null], // no password
    [["Proxy-Authorization", basic("agent:bad token")], null],
    [["Proxy-Authorization", "Digest x"], null],
    [["Proxy-Authorization", "Bearer a.b.c", "Proxy-Authorization", "Bearer d.e.f"], null], // repeated: ambiguous
    [["Authorization", "Bearer a.b.c"], null], // the origin's header is not the proxy's
    [[], null],
  ])("%o → %s", (raw, expected) => {
    expect(proxyAuthorizationToken(raw)).toBe(expected);
  });
});

describe("parseAuthority", () => {
  it.each([
    ["api.github.com:443", { host: "api.github.com", port: 443 }],
    ["API.GitHub.com:443", { host: "api.github.com", port: 443 }],
    ["[::1]:8443", { host: "::1", port: 8443 }],
    ["127.0.0.1:1", { host: "127.0.0.1", port: 1 }],
  ])("%s", (text, expected) => expect(parseAuthority(text)).toEqual(expected));
  it.each(["api.github.com", "api.github.com:0", "api.github.com:65536", "user@host:443", "host:443/path", "host.:443", ":443", "::1:443"])(
    "%s → null",
    (text) => expect(parseAuthority(text)).toBeNull(),
  );
});

describe("request targets and Host", () => {
  it("absolute http targets", () => {
    expect(absoluteHttpTarget("http://h.example/a?b")).toEqual({ host: "h.example", port: 80, rawTarget: "/a?b" });
    expect(absoluteHttpTarget("http://h.example:8080")).toEqual({ host: "h.example", port: 8080, rawTarget: "/" });
    expect(absoluteHttpTarget("http://h.example?q")).toEqual({ host: "h.example", port: 80, rawTarget: "/?q" });
    expect(() => absoluteHttpTarget("/a")).toThrow(/absolute/);
    expect(() => absoluteHttpTarget("https://h.example/")).toThrow(/CONNECT/);
    expect(() => absoluteHttpTarget("http://user@h.example/")).toThrow();
    expect(() => absoluteHttpTarget("http://not_a_host/")).toThrow(expect.objectContaining({ code: "invalid_request_target" }));
  });
  it("targets inside a tunnel name only the tunnel's origin", () => {
    expect(tunnelTarget("/a", "h", 443)).toBe("/a");
    expect(tunnelTarget("https://h/a", "h", 443)).toBe("/a");
    expect(tunnelTarget("https://h:443?x", "h", 443)).toBe("/?x");
    // The forward proxy's own code: invalid_target is the token endpoint's RFC 8707 refusal.
    expect(() => tunnelTarget("https://other/a", "h", 443)).toThrow(expect.objectContaining({ code: "invalid_request_target" }));
    expect(() => tunnelTarget("*", "h", 443)).toThrow();
    expect(() => tunnelTarget("h:443", "h", 443)).toThrow();
  });
  it("the Host header must name the same origin", () => {
    expect(() => assertHostHeader("H", "h", 443, "https:")).not.toThrow();
    expect(() => assertHostHeader("h:443", "h", 443, "https:")).not.toThrow();
    expect(() => assertHostHeader("h:8443", "h", 443, "https:")).toThrow();
    expect(() => assertHostHeader("other", "h", 443, "https:")).toThrow();
    expect(() => assertHostHeader("h", "h", 80, "http:")).not.toThrow();
  });
});

describe("handOffHeaders", () => {
  it("replaces the agent's Authorization and the proxy's own headers with Keyward's bearer", () => {
    const out = handOffHeaders(
      { authorization: "token ghp_placeholder", "proxy-authorization": "Basic x", "proxy-connection": "keep-alive", accept: "*/*" },
      ["Authorization", "token ghp_placeholder", "Proxy-Authorization", "Basic x", "Proxy-Connection", "keep-alive", "Accept", "*/*"],
      "a.b.c",
    );
    expect(out.headers).toEqual({ accept: "*/*", authorization: "Bearer a.b.c" });
    expect(out.rawHeaders).toEqual(["Accept", "*/*", "Authorization", "Bearer a.b.c"]);
  });

  it("drops every header that carries a placeholder credential, whatever its name", () => {
    const out = handOffHeaders(
      { "x-api-key": "keyward-placeholder-railway-token", "x-amz-date": "20260101T000000Z", accept: "*/*" },
      ["X-Api-Key", "keyward-placeholder-railway-token", "X-Amz-Date", "20260101T000000Z", "Accept", "*/*"],
      "a.b.c",
    );
    expect(Object.keys(out.headers).sort()).toEqual(["accept", "authorization", "x-amz-date"]);
    expect(out.rawHeaders).not.toContain("keyward-placeholder-railway-token");
  });
});
