import { describe, expect, it } from "vitest";
import { forbidden, KeywardError, refused, tooManyRequests } from "../../../src/http/errors.js";
import {
  jsonRpcErrorCode,
  jsonRpcIds,
  MAX_ECHOED_JSONRPC_ID_LENGTH,
  MAX_ECHOED_JSONRPC_IDS,
  MAX_QUOTED_REASON_LENGTH,
  nativeRefusal,
  refusalDialect,
} from "../../../src/proxy/refusals.js";
import { title } from "../../security/cases.js";

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

  describe(title("REQ-39"), () => {
    const ids = (body: string) => jsonRpcIds(Buffer.from(body));
    const members = (n: number, member: (i: number) => string) => `[${Array.from({ length: n }, (_, i) => member(i)).join(",")}]`;
    it.each([
      ["a batch of non-calls: one error, id null", "[1,1,1]", { batch: true, ids: [null] }],
      ["members sharing an id: one error for it", '[{"id":7},{"id":7},{"id":"7"},{"method":"n"},{"method":"n"}]', { batch: true, ids: [7, "7", null] }],
      ["as many distinct ids as are echoed", members(MAX_ECHOED_JSONRPC_IDS, (i) => `{"id":${i}}`), { batch: true, ids: Array.from({ length: MAX_ECHOED_JSONRPC_IDS }, (_, i) => i) }],
      ["one distinct id more: a single error, id null", members(MAX_ECHOED_JSONRPC_IDS + 1, (i) => `{"id":${i}}`), { batch: false, ids: [null] }],
      ["an id too long to echo: null", `{"id":"${"i".repeat(MAX_ECHOED_JSONRPC_ID_LENGTH + 1)}"}`, { batch: false, ids: [null] }],
      ["an id as long as is echoed", `{"id":"${"i".repeat(MAX_ECHOED_JSONRPC_ID_LENGTH)}"}`, { batch: false, ids: ["i".repeat(MAX_ECHOED_JSONRPC_ID_LENGTH)] }],
    ])("ids echoed: %s", (_name, body, expected) => {
      expect(ids(body)).toEqual(expected);
    });

    it("500,000 members (1 MB) on a long path: a refusal of bounded size, the reason cut short", () => {
      const pathDenied = refused("path_not_granted", `the grant does not allow /rpc/${"a".repeat(100_000)}`);
      const batches = [
        "[" + Array(500_000).fill("1").join(",") + "]",
        members(50_000, (i) => `{"id":${i}}`),
        members(MAX_ECHOED_JSONRPC_IDS, (i) => `{"id":"${String(i).padStart(MAX_ECHOED_JSONRPC_ID_LENGTH, "x")}"}`),
      ];
      for (const batch of batches) {
        expect(nativeRefusal(pathDenied, { kind: "jsonrpc" }, { requestId, jsonRpc: ids(batch) })!.body.length).toBeLessThan(100 * 1024);
      }
      const one = JSON.parse(nativeRefusal(pathDenied, { kind: "jsonrpc" }, { requestId, jsonRpc: ids("[1,1]") })!.body);
      expect(one).toEqual([{ jsonrpc: "2.0", id: null, error: { code: -32003, message: expect.any(String), data: { code: "path_not_granted", reason: expect.any(String) } } }]);
      expect(one[0].error.data.reason).toBe(`the grant does not allow /rpc/${"a".repeat(MAX_QUOTED_REASON_LENGTH - "the grant does not allow /rpc/".length)}…`);
    });

    it("a reason is cut short in every dialect, never between the halves of a surrogate pair", () => {
      const long = forbidden(`${"r".repeat(MAX_QUOTED_REASON_LENGTH - 1)}\u{1F600}${"r".repeat(10)}`);
      expect(JSON.parse(nativeRefusal(long, { kind: "graphql" }, { requestId })!.body).errors[0].extensions.reason).toBe(`${"r".repeat(MAX_QUOTED_REASON_LENGTH - 1)}…`);
      expect(nativeRefusal(long, { kind: "aws-xml" }, { requestId })!.body).toContain(`${"r".repeat(MAX_QUOTED_REASON_LENGTH - 1)}…</Message>`);
      expect(JSON.parse(nativeRefusal(denied, { kind: "graphql" }, { requestId })!.body).errors[0].extensions.reason).toBe(denied.extra.reason);
    });
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
