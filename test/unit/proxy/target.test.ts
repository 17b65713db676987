import { describe, expect, it } from "vitest";
import { parseProxyTarget } from "../../../src/proxy/target.js";

describe("parseProxyTarget: accepted", () => {
  const cases: [string, string, string, string][] = [
    ["/proxy/name/a/b?x=1", "name", "/a/b", "x=1"],
    ["/proxy/name", "name", "/", ""],
    ["/proxy/name/", "name", "/", ""],
    ["/proxy/name?x", "name", "/", "x"],
    ["/proxy/name?", "name", "/", ""],
    ["/proxy/name/?x=1&y=2", "name", "/", "x=1&y=2"],
    ["/proxy/hosting-staging/v1/projects?limit=5", "hosting-staging", "/v1/projects", "limit=5"],
    ["/proxy/a/v1", "a", "/v1", ""],
    ["/proxy/a1/v1", "a1", "/v1", ""],
    ["/proxy/" + "a".repeat(63) + "/x", "a".repeat(63), "/x", ""],
    // everything after the name is raw: no decoding, no normalising here
    ["/proxy/name/a%2Fb/../c", "name", "/a%2Fb/../c", ""],
    ["/proxy/name//x", "name", "//x", ""],
    ["/proxy/name/a%20b?q=%3F", "name", "/a%20b", "q=%3F"],
    // only the first "?" splits; later ones belong to the query
    ["/proxy/name/a?b?c", "name", "/a", "b?c"],
    ["/proxy/name/a?x=/proxy/other/", "name", "/a", "x=/proxy/other/"],
    // REQ-37: the query is what the upstream receives, as a URL holds it: one leading "?" dropped, and
    // ", #, ', < and > escaped, so that the policy reads `??_method=x` as the `_method=x` that is sent
    ["/proxy/name/a??_method=DELETE", "name", "/a", "_method=DELETE"],
    ["/proxy/name/a???_method=DELETE", "name", "/a", "?_method=DELETE"],
    ["/proxy/name/a??", "name", "/a", ""],
    ["/proxy/name/a?x#&_method=y", "name", "/a", "x%23&_method=y"],
    ["/proxy/name/a?q=\"'<>`{}|\\^", "name", "/a", "q=%22%27%3C%3E`{}|\\^"],
    ["/proxy/name/a?q=%zz%3F?", "name", "/a", "q=%zz%3F?"],
  ];
  it.each(cases)("%s → %s %s ?%s", (raw, upstream, rawPath, query) => {
    expect(parseProxyTarget(raw)).toEqual({ upstream, rawPath, query });
  });
});

describe("parseProxyTarget: refused", () => {
  const cases = [
    // not under /proxy/
    "",
    "/",
    "/proxy",
    "/proxy?x=1",
    "/proxyname/x",
    "/Proxy/name/x",
    "/PROXY/name/x",
    "/v1/proxy/name/x",
    "proxy/name/x",
    "//proxy/name/x",
    "/%70roxy/name/x",
    "/./proxy/name/x",
    // absolute-form and authority-form targets
    "http://evil/proxy/x/",
    "https://keyward/proxy/name/x",
    "http://keyward/proxy/name",
    "keyward:443",
    "*",
    // bad upstream names
    "/proxy/",
    "/proxy//x",
    "/proxy/?x=1",
    "/proxy/Name/x",
    "/proxy/NAME",
    "/proxy/../x",
    "/proxy/./x",
    "/proxy/../admin/x",
    "/proxy/%2e%2e/x",
    "/proxy/%2e/x",
    "/proxy/na%6De/x",
    "/proxy/name%2Fother/x",
    "/proxy/name.other/x",
    "/proxy/name_other/x",
    "/proxy/name;x/a",
    "/proxy/-name/x",
    "/proxy/name-/x",
    "/proxy/" + "a".repeat(64) + "/x",
    "/proxy/name\\x",
    "/proxy/na me/x",
    "/proxy/naïve/x",
    "/proxy/name#frag",
    "/proxy/name\u0000/x",
  ];
  it.each(cases)("%j → null", (raw) => {
    expect(parseProxyTarget(raw)).toBeNull();
  });
});
