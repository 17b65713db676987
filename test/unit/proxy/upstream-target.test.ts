import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutgoingCall, upstreamTarget } from "../../../src/proxy/forward.js";
import { normalisePath } from "../../../src/policy/paths.js";
import { queryAsSent } from "../../../src/proxy/target.js";

const upstreamOf = (baseUrl: string) => {
  const url = new URL(baseUrl);
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, "") };
};

/** The URL the proxy built per call before: the base URL, its path joined with the call's, its query set through the URL. */
function throughUrl(baseUrl: string, encodedPath: string, rawQuery: string): string {
  const base = new URL(baseUrl);
  const url = new URL(base.href);
  url.pathname = base.pathname.replace(/\/+$/, "") + encodedPath;
  url.search = rawQuery;
  return url.pathname + url.search;
}

describe("upstreamTarget", () => {
  it.each([
    ["https://api.example.test", "/v1/items", "", "/v1/items"],
    ["https://api.example.test/", "/v1/items", "a=1&b=2", "/v1/items?a=1&b=2"],
    ["https://api.example.test/base/", "/x", "q=%20ok", "/base/x?q=%20ok"],
    // The query goes out as decided on, even one that starts with "?" (one was already dropped)
    ["https://api.example.test", "/x", "?a=1", "/x??a=1"],
  ])("%s + %s ? %s → %s", (base, path, query, expected) => {
    expect(upstreamTarget(upstreamOf(base), path, query)).toEqual({ origin: new URL(base).origin, path: expected });
  });

  it.each([
    // What a URL would escape or drop (REQ-37: `??_method=x` is sent as `?_method=x`)
    ["q=a b", "q=a%20b"],
    ["q=<'\">#", "q=%3C%27%22%3E%23"],
    ["?a=1", "a=1"],
    ["??a=1", "?a=1"],
    ["?", ""],
    ["q=é", "q=%C3%A9"],
    ["a=1&b=%zz", "a=1&b=%zz"],
  ])("queryAsSent(%j) → %j", (raw, sent) => {
    expect(queryAsSent(raw)).toBe(sent);
  });

  it("sends exactly what building the URL would, for any normalised path and any query as parsed", () => {
    const base = fc.constantFrom("https://api.example.test", "https://api.example.test/", "http://127.0.0.1:8080/base/path/", "https://h.test/a%20b");
    const text = fc.string({ unit: fc.oneof(fc.constantFrom(..."aZ09-._~!$&'()*+,;=:@/?#%[]{}<>\"` \\^|"), fc.string({ unit: "binary", maxLength: 1 })) });
    fc.assert(
      fc.property(base, text, text, (baseUrl, rawPath, rawQuery) => {
        const normalised = normalisePath("/" + rawPath);
        fc.pre(normalised.ok);
        const encoded = normalised.ok ? normalised.path.encoded : "";
        expect(upstreamTarget(upstreamOf(baseUrl), encoded, queryAsSent(rawQuery)).path).toBe(throughUrl(baseUrl, encoded, rawQuery));
      }),
      { numRuns: 5000 },
    );
  });
});

describe("OutgoingCall", () => {
  const target = { origin: "https://api.example.test", path: "/v1/items?a=1" };

  it("goes where upstreamTarget said when the credential leaves its URL alone", () => {
    expect(new OutgoingCall("GET", target, {}, undefined).sentTo()).toBe(target);
  });

  it("goes where the credential rewrote its URL to (a query parameter added)", () => {
    const call = new OutgoingCall("GET", target, {}, undefined);
    call.url.searchParams.append("key", "s3cret");
    expect(call.sentTo()).toEqual({ origin: target.origin, path: "/v1/items?a=1&key=s3cret" });
  });

  it("refuses a URL that left the upstream's origin", () => {
    const call = new OutgoingCall("GET", target, {}, undefined);
    call.url = new URL("https://elsewhere.test/v1/items");
    expect(() => call.sentTo()).toThrow(/left its origin/);
  });
});
