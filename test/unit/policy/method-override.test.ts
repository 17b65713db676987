import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  formBodyOf,
  formOverrideMatters,
  isMethodOverrideName,
  methodOverrideInForm,
  methodOverrideInQuery,
  refuseMethodOverride,
} from "../../../src/policy/method-override.js";
import { title } from "../../security/cases.js";

const ALL = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const open = { methods: ALL, deny: [], requiresApprovalFor: [], destructive: [] };
const noDelete = { ...open, methods: ["GET", "POST", "PUT", "PATCH"] };

describe("isMethodOverrideName: names some framework reads as a method override", () => {
  const refused = [
    "_method", "_METHOD", "_Method", "%5Fmethod", "%5fmethod", "_%6Dethod", "%255Fmethod", // encodings, twice
    ".method", "%2Emethod", "+method", "%20method", // PHP: "." and a space become "_"
    "[method", "%5Bmethod", "_method[]", "_method[0]", "_method[x]", "%5Fmethod%5B%5D",
    "_method%00", "_method%00junk", "%EF%BC%BFmethod", // NUL cut, full-width low line (NFKC)
    "-method", "_method ", "_method+", "+_method",
    "X-HTTP-Method-Override", "x-http-method-override", "X_HTTP_METHOD_OVERRIDE", "x.http.method.override",
    "X-HTTP-Method", "X-Method-Override", "x-original-method",
    "?_method", "%3F_method", "??_method", "?X-HTTP-Method-Override", // REQ-37: URLSearchParams drops a leading `?`
  ];
  it.each(refused)("%s", (name) => expect(isMethodOverrideName(name)).toBe(true));

  const allowed = ["method", "_methods", "my_method", "methodology", "x-http-method-overrides", "_m", "http_method", "q", "", "%zz_method"];
  it.each(allowed)("not %s", (name) => expect(isMethodOverrideName(name)).toBe(false));
});

describe("methodOverrideInQuery", () => {
  it.each([
    ["_method=DELETE", "_method"],
    ["a=1&.method=DELETE", ".method"],
    ["a=1;[method=PUT", "[method"],
    ["%2Emethod=DELETE", "%2Emethod"],
    ["_method", "_method"],
    ["X-HTTP-Method-Override=DELETE", "X-HTTP-Method-Override"],
    // REQ-37: `/x???_method=x` is sent as `/x??_method=x` (src/proxy/target.ts), whose query is this
    ["?_method=DELETE", "?_method"],
    ["a=1&?_method=DELETE", "?_method"],
  ])("%s → %s", (query, name) => expect(methodOverrideInQuery(query)).toBe(name));
  it.each(["", "a=1&b=2", "method=eth_call", "q=_method", "x=%5Fmethod"])("%s → none", (query) =>
    expect(methodOverrideInQuery(query)).toBeNull(),
  );
});

describe("formBodyOf: bodies a framework reads form fields from", () => {
  it.each([
    ["POST", {}, "urlencoded"],
    ["POST", { "content-type": "application/x-www-form-urlencoded" }, "urlencoded"],
    ["POST", { "content-type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8" }, "urlencoded"],
    ["POST", { "content-type": "multipart/form-data; boundary=x" }, "multipart"],
    ["POST", { "content-type": "multipart/mixed; boundary=x" }, "multipart"],
    ["POST", { "content-type": "application/x-www-form-urlencoded; charset=utf-16" }, "ambiguous"],
    ["POST", { "content-type": "application/x-www-form-urlencoded; charset=UTF-7" }, "ambiguous"],
    ["POST", { "content-type": ["application/json", "application/x-www-form-urlencoded"] }, "ambiguous"],
    // REQ-62: Laravel's Request::isJson() reads `/json` or `+json` anywhere in the header
    ["POST", { "content-type": "application/json" }, "json"],
    ["POST", { "content-type": "application/vnd.api+json; charset=utf-8" }, "json"],
    ["POST", { "content-type": "Text/JSON" }, "json"],
    ["POST", { "content-type": "text/plain; x=/json" }, "json"],
    ["POST", { "content-type": "application/json; charset=utf-16" }, "ambiguous"],
    ["POST", { "content-type": "text/plain" }, null],
    ["PUT", { "content-type": "application/json" }, null],
    ["PUT", { "content-type": "application/x-www-form-urlencoded" }, null],
    ["GET", {}, null],
  ] as [string, Record<string, string | string[]>, string | null][])("%s %j → %s", (method, headers, kind) =>
    expect(formBodyOf(method, headers)).toBe(kind),
  );
});

describe("formOverrideMatters: when a form override could change the decision", () => {
  it("not when the token and grant allow every method and no rule singles one out", () => {
    expect(formOverrideMatters({ methods: ALL }, open)).toBe(false);
    expect(formOverrideMatters({ methods: ALL }, { ...open, deny: [{ method: "POST" }, {}] })).toBe(false);
  });
  it("when the token or grant lacks a method, or a deny, approval or destructive rule names one", () => {
    expect(formOverrideMatters({ methods: ["GET", "POST"] }, open)).toBe(true);
    expect(formOverrideMatters({ methods: ALL }, noDelete)).toBe(true);
    expect(formOverrideMatters({ methods: ALL }, { ...open, deny: [{ method: "DELETE" }] })).toBe(true);
    expect(formOverrideMatters({ methods: ALL }, { ...open, requiresApprovalFor: [{ method: "PUT" }] })).toBe(true);
    expect(formOverrideMatters({ methods: ALL }, { ...open, destructive: [{ method: "PATCH" }] })).toBe(true);
  });
});

describe("methodOverrideInForm", () => {
  const bytes = (s: string) => Buffer.from(s, "utf8");
  it.each([
    "_method=DELETE",
    "a=1&_method=DELETE",
    "a=1&%5Fmethod=DELETE",
    ".method=DELETE",
    "[method=DELETE",
    "x=1;_METHOD=PUT",
    "X-HTTP-Method-Override=DELETE",
  ])("urlencoded %s", (body) => expect(methodOverrideInForm("urlencoded", bytes(body))).not.toBeNull());
  it.each(["a=1&b=2", "note=_method%3DDELETE", ""])("urlencoded %s: none", (body) =>
    expect(methodOverrideInForm("urlencoded", bytes(body))).toBeNull(),
  );

  const part = (disposition: string) =>
    bytes(`--b\r\nContent-Disposition: form-data; ${disposition}\r\n\r\nDELETE\r\n--b--\r\n`);
  it.each([
    'name="_method"',
    "name=_method",
    'name="_METHOD"',
    'name=".method"',
    'name="[method"',
    'name="_method[]"',
    'name = "_method"',
    "name*=utf-8''%5Fmethod",
    'NAME="x-http-method-override"',
    'name="\\_method"',
    'name="＿method"',
  ])("multipart %s", (d) => expect(methodOverrideInForm("multipart", part(d))).not.toBeNull());
  it.each(['name="comment"', 'name="file"; filename="_method.txt"', 'name="method"'])("multipart %s: none", (d) =>
    expect(methodOverrideInForm("multipart", part(d))).toBeNull(),
  );
  it.each(['{"_method":"DELETE"}', '{"a":1,"_METHOD":"PUT"}', '{"\\u005fmethod":"DELETE"}', '{"_method":"x","_method":"DELETE"}', '{"X-HTTP-Method-Override":"DELETE"}'])(
    `${title("REQ-62")}: JSON %s`,
    (body) => expect(methodOverrideInForm("json", bytes(body))).not.toBeNull(),
  );
  it.each(['{"a":{"_method":"DELETE"}}', '{"note":"_method"}', '[{"_method":"DELETE"}]', '"_method"', "", "not json"])("JSON %s: none", (body) =>
    expect(methodOverrideInForm("json", bytes(body))).toBeNull(),
  );

  it("multipart: a name anywhere in the body counts, however the parts are framed", () => {
    expect(methodOverrideInForm("multipart", bytes('garbage\nContent-Disposition: form-data; name="_method"\n\nDELETE'))).not.toBeNull();
  });

  // 40,000 spaces took 2.1 s when the whitespace around `*` could be split two ways; a linear scan takes well under a millisecond.
  const spaces = " ".repeat(40_000);
  it.each([
    ["a name followed by spaces", "name" + spaces],
    ["spaces on both sides of *", "name" + spaces + "*" + spaces],
    ["spaces after =", "name=" + spaces],
    ["spaces after *", "name*" + spaces],
    ["names and spaces repeated", ("name" + " ".repeat(400)).repeat(100)],
  ])(`${title("REQ-34")}: %s`, (_shape, body) => {
    const started = performance.now();
    expect(methodOverrideInForm("multipart", bytes(body))).toBeNull();
    expect(performance.now() - started).toBeLessThan(250);
  });
  it(`${title("REQ-34")}: names after a long run of spaces are still found`, () => {
    expect(methodOverrideInForm("multipart", bytes("name" + spaces + "*" + spaces + "=" + spaces + "_method"))).toBe("_method");
    expect(methodOverrideInForm("multipart", bytes("name" + spaces + '; name = "_method"'))).toBe("_method");
  });
});

describe("refuseMethodOverride", () => {
  const call = (query: string, headers: Record<string, string | string[]>, body: string | Uint8Array | undefined, method = "POST") => ({
    method,
    query,
    headers,
    body: body === undefined ? undefined : Buffer.from(body),
  });
  it("refuses an override in the query whatever the grant", () => {
    expect(refuseMethodOverride(call(".method=DELETE", {}, ""), { methods: ALL }, open)?.code).toBe("method_override");
    expect(refuseMethodOverride(call("_method=GET", {}, undefined, "GET"), { methods: ALL }, open)?.code).toBe("method_override");
  });
  it("refuses an override in a form body only when it matters", () => {
    const form = { "content-type": "application/x-www-form-urlencoded" };
    expect(refuseMethodOverride(call("", form, "_method=DELETE"), { methods: ALL }, open)).toBeNull();
    expect(refuseMethodOverride(call("", form, "_method=DELETE"), { methods: ALL }, noDelete)?.reason).toMatch(/form parameter "_method"/);
    expect(refuseMethodOverride(call("", form, "a=1"), { methods: ALL }, noDelete)).toBeNull();
  });
  it("refuses a form body it needed and did not get, or cannot read", () => {
    expect(refuseMethodOverride(call("", {}, undefined), { methods: ALL }, noDelete)?.code).toBe("method_override");
    const utf16 = { "content-type": "application/x-www-form-urlencoded; charset=utf-16le" };
    expect(refuseMethodOverride(call("", utf16, ""), { methods: ALL }, noDelete)?.code).toBe("method_override");
  });
  const compressed: [string, Record<string, string | string[]>][] = [
    ["gzip", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "gzip" }],
    ["deflate", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "deflate" }],
    ["br, any case", { "content-type": "application/x-www-form-urlencoded", "content-encoding": "BR" }],
    ["multipart", { "content-type": "multipart/form-data; boundary=b", "content-encoding": "gzip" }],
    ["no Content-Type, as Rack reads it", { "content-encoding": "gzip" }],
    ["identity, then gzip", { "content-encoding": ["identity", "gzip"] }],
  ];
  it.each(compressed)(`${title("REQ-35")}: %s`, (_what, headers) => {
    // The compressed bytes hide the field: what the scan reads is not what an inflating upstream reads.
    const body = gzipSync("_method=DELETE");
    expect(methodOverrideInForm("urlencoded", body)).toBeNull();
    const refused = refuseMethodOverride(call("", headers, body), { methods: ALL }, noDelete);
    expect(refused?.code).toBe("method_override");
    expect(refused?.reason).toMatch(/cannot be checked for a method override/);
    // Under a grant no override could matter to, the body is not read at all.
    expect(refuseMethodOverride(call("", headers, undefined), { methods: ALL }, open)).toBeNull();
  });
  it(`${title("REQ-35")}: identity is no compression`, () => {
    for (const encoding of ["identity", " Identity ", ""]) {
      const headers = { "content-type": "application/x-www-form-urlencoded", "content-encoding": encoding };
      expect(refuseMethodOverride(call("", headers, "a=1"), { methods: ALL }, noDelete), encoding).toBeNull();
    }
  });
  it(`${title("REQ-76")}`, () => {
    // PHP's $_REQUEST merges the query and the form (request_order "GP": the body wins): an override in
    // the query of a form POST is refused whatever the body says.
    const form = { "content-type": "application/x-www-form-urlencoded" };
    expect(refuseMethodOverride(call("_method=DELETE", form, "_method=POST"), { methods: ALL }, noDelete)?.reason).toMatch(/query parameter "_method"/);
    // PHP's SAPI ends the media type at the first `;`, `,` or space, Rack's at `;` or `,`: each of these
    // Content-Types is a form to them, and its `_method` reaches $_POST (and Symfony's getMethod()).
    for (const type of ["application/x-www-form-urlencoded, text/plain", "application/x-www-form-urlencoded text/plain", "application/x-www-form-urlencoded,"]) {
      expect(refuseMethodOverride(call("", { "content-type": type }, "a=1&_method=DELETE"), { methods: ALL }, noDelete)?.reason, type).toMatch(/form parameter "_method"/);
      expect(refuseMethodOverride(call("", { "content-type": type }, "a=1"), { methods: ALL }, noDelete), type).toBeNull();
    }
    const multipart = 'multipart/form-data,boundary=b';
    const part = '--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--\r\n';
    expect(refuseMethodOverride(call("", { "content-type": multipart }, part), { methods: ALL }, noDelete)?.reason).toMatch(/form parameter "_method"/);
    // A list of types is read as its first by these, perhaps as another by some other server: refused when it matters.
    expect(refuseMethodOverride(call("", { "content-type": "text/plain, application/x-www-form-urlencoded" }, "_method=DELETE"), { methods: ALL }, noDelete)?.code).toBe("method_override");
    expect(refuseMethodOverride(call("", { "content-type": "text/plain, application/x-www-form-urlencoded" }, "_method=DELETE"), { methods: ALL }, open)).toBeNull();
  });
  it("other methods are not overridden", () => {
    expect(refuseMethodOverride(call("", {}, undefined, "PUT"), { methods: ALL }, noDelete)).toBeNull();
  });
  it(`${title("REQ-62")}: a JSON body is read as Laravel reads it`, () => {
    const json = { "content-type": "application/json" };
    expect(refuseMethodOverride(call("", json, '{"name":"x","_method":"DELETE"}'), { methods: ALL }, noDelete)?.reason).toMatch(/JSON parameter "_method"/);
    expect(refuseMethodOverride(call("", json, '{"name":"x"}'), { methods: ALL }, noDelete)).toBeNull();
    expect(refuseMethodOverride(call("", json, undefined), { methods: ALL }, noDelete)?.reason).toMatch(/not inspected/);
  });
});
