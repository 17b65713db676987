import { describe, expect, it } from "vitest";
import { forbidden, KeywardError, tooManyRequests } from "../../../src/http/errors.js";
import { jsonRpcErrorCode, jsonRpcIds, nativeRefusal, refusalDialect } from "../../../src/proxy/refusals.js";

const denied = forbidden("deny[0] matches (POST any path?delete=*)");

describe("refusalDialect", () => {
  const http = { protocol: "http", presets: [] as string[], authType: "header" };
  it.each([
    ["a plain HTTP upstream", http, {}, "keyward"],
    ["GraphQL", { ...http, protocol: "graphql" }, {}, "graphql"],
    ["JSON-RPC", { ...http, protocol: "jsonrpc" }, {}, "jsonrpc"],
    ["an aws-sigv4 upstream (REST-XML)", { ...http, authType: "aws-sigv4" }, {}, "aws-xml"],
    ["an aws-* preset", { ...http, presets: ["aws-s3"] }, {}, "aws-xml"],
    ["an AWS JSON protocol call", { ...http, authType: "aws-sigv4" }, { "x-amz-target": "DynamoDB_20120810.DeleteTable" }, "aws-json"],
    ["an AWS Query protocol call", { ...http, presets: ["aws-rds"] }, { "content-type": "application/x-www-form-urlencoded" }, "aws-query"],
  ] as const)("%s", (_name, upstream, headers, kind) => {
    expect(refusalDialect(upstream, headers).kind).toBe(kind);
  });
});

describe("nativeRefusal", () => {
  const requestId = "req-1";

  it("AWS REST-XML: an S3 <Error> with AccessDenied, the message escaped", () => {
    const native = nativeRefusal(forbidden("a <b> & c"), { kind: "aws-xml" }, { requestId })!;
    expect(native.contentType).toBe("application/xml");
    expect(native.body).toContain("<Error><Code>AccessDenied</Code><Message>request denied: a &lt;b&gt; &amp; c</Message>");
    expect(native.body).toContain("<RequestId>req-1</RequestId>");
  });

  it("AWS throttling: SlowDown / ThrottlingException, Retry-After kept by the caller's headers", () => {
    const spent = tooManyRequests("perMinute", 30);
    expect(nativeRefusal(spent, { kind: "aws-xml" }, { requestId })!.body).toContain("<Code>SlowDown</Code>");
    const json = nativeRefusal(spent, { kind: "aws-json", contentType: "application/x-amz-json-1.1" }, { requestId })!;
    expect(json.contentType).toBe("application/x-amz-json-1.1");
    expect(JSON.parse(json.body)).toMatchObject({ __type: "ThrottlingException", keywardCode: "budget_exceeded" });
  });

  it("AWS Query: an ErrorResponse", () => {
    expect(nativeRefusal(denied, { kind: "aws-query" }, { requestId })!.body).toMatch(/^<\?xml[^>]*>\n<ErrorResponse><Error><Type>Sender<\/Type><Code>AccessDenied<\/Code>/);
  });

  it("GraphQL: errors with the Keyward code in extensions", () => {
    expect(JSON.parse(nativeRefusal(denied, { kind: "graphql" }, { requestId })!.body)).toEqual({
      errors: [{ message: "request denied: deny[0] matches (POST any path?delete=*)", extensions: { code: "forbidden", reason: "deny[0] matches (POST any path?delete=*)" } }],
    });
  });

  it("JSON-RPC: the call's id, or one error per batch member", () => {
    const single = JSON.parse(nativeRefusal(denied, { kind: "jsonrpc" }, { requestId, jsonRpc: jsonRpcIds(Buffer.from('{"jsonrpc":"2.0","id":7,"method":"x"}')) })!.body);
    expect(single).toMatchObject({ jsonrpc: "2.0", id: 7, error: { code: -32003, data: { code: "forbidden" } } });
    const batch = JSON.parse(nativeRefusal(denied, { kind: "jsonrpc" }, { requestId, jsonRpc: jsonRpcIds(Buffer.from('[{"id":"a","method":"x"},{"method":"n"}]')) })!.body);
    expect(batch.map((r: { id: unknown }) => r.id)).toEqual(["a", null]);
    expect(jsonRpcIds(Buffer.from("not json"))).toEqual({ batch: false, ids: [null] });
    expect(jsonRpcIds(undefined)).toEqual({ batch: false, ids: [null] });
  });

  it("JSON-RPC codes stay in the server-defined range", () => {
    for (const status of [400, 401, 403, 404, 413, 429, 500, 502, 503, 504, 599]) {
      const code = jsonRpcErrorCode(status);
      expect(code).toBeLessThanOrEqual(-32000);
      expect(code).toBeGreaterThanOrEqual(-32099);
    }
    expect(jsonRpcErrorCode(403)).toBe(-32003);
  });

  it("the Keyward dialect is left to the error handler", () => {
    expect(nativeRefusal(new KeywardError(403, "forbidden", "x"), { kind: "keyward" }, { requestId })).toBeNull();
  });
});
