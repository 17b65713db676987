import { describe, expect, it } from "vitest";
import { inspectAwsAction } from "../../../src/policy/aws-action.js";
import { mediaType, strictJson, type CallContent } from "../../../src/policy/content.js";
import { globMatches } from "../../../src/policy/glob.js";
import { inspectJsonRpc } from "../../../src/policy/jsonrpc.js";
import { describeOperation, type Inspection } from "../../../src/policy/operations.js";

const call = (method: string, body: string | undefined, headers: Record<string, string | string[]> = {}, query = ""): CallContent => ({
  method,
  query,
  headers,
  body: body === undefined ? undefined : Buffer.from(body, "utf8"),
});
const show = (result: Inspection) => (result.ok ? result.operations.map(describeOperation) : result.reason);

describe("globMatches", () => {
  const cases: [string, string, boolean][] = [
    ["volumeDelete", "volumeDelete", true],
    ["volumeDelete", "volumedelete", false],
    ["volumeDelete", "volumeDeletes", false],
    ["*Delete", "volumeDelete", true],
    ["*Delete", "Delete", true],
    ["*Delete", "volumeDeleted", false],
    ["backup*", "backupCreate", true],
    ["backup*", "volumeBackup", false],
    ["*backup*", "volumeInstanceBackupDelete", false], // case-sensitive
    ["*Backup*", "volumeInstanceBackupDelete", true],
    ["*", "", true],
    ["*", "anything", true],
    ["a*b*c", "abc", true],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "acb", false],
    ["a*a", "a", false],
    ["a*a", "aa", true],
    ["eth_*", "eth_sendRawTransaction", true],
    ["wallet.*", "wallet.delete", true],
    ["wallet.*", "walletXdelete", false],
  ];
  it.each(cases)("%s vs %s → %s", (pattern, name, expected) => {
    expect(globMatches(pattern, name)).toBe(expected);
  });
});

describe("strictJson", () => {
  const ok = (text: string) => strictJson(Buffer.from(text, "utf8"));
  it.each([
    ['{"a":1,"a":2}', "a"],
    ['{"a":{"b":1,"b":2}}', "b"],
    ['[{"x":1},{"y":1,"y":2}]', "y"],
    ['{"a\\u0062":1,"ab":2}', "ab"],
    ['{"__proto__":1,"__proto__":2}', "__proto__"],
  ])("refuses duplicate keys in %s", (text, key) => {
    expect(ok(text)).toEqual({ ok: false, reason: `duplicate JSON key ${JSON.stringify(key)}` });
  });
  it.each(['{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}', '{"a":"\\"a\\":1,","b":"{"}', '["a","a"]', '{"":1,"x":""}'])(
    "accepts keys repeated only across objects or inside strings: %s",
    (text) => {
      expect(ok(text)).toEqual({ ok: true, value: JSON.parse(text) });
    },
  );
});

describe("mediaType", () => {
  it.each([
    [{ "content-type": "Application/JSON" }, { ok: true, value: "application/json" }],
    [{ "content-type": 'application/json; charset="utf-8"' }, { ok: true, value: "application/json" }],
    [{ "content-type": "application/json; charset=latin1" }, { ok: false, reason: "unsupported charset latin1" }],
    [{ "content-type": ["application/json", "text/plain"] }, { ok: false, reason: "repeated content-type header" }],
    [{}, { ok: true, value: undefined }],
  ])("%j", (headers, expected) => {
    expect(mediaType(headers)).toEqual(expected);
  });
});

describe("inspectJsonRpc", () => {
  const json = { "content-type": "application/json" };
  const ok: [string, string, string[]][] = [
    ["a call", '{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}', ["method eth_blockNumber"]],
    ["a notification", '{"jsonrpc":"2.0","method":"log","params":["x"]}', ["method log"]],
    ["JSON-RPC 1.0 (no version)", '{"method":"getinfo","params":[],"id":1}', ["method getinfo"]],
    ["a batch: every call", '[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b","id":2}]', ["method a", "method b"]],
  ];
  it.each(ok)("%s", (_name, body, expected) => {
    expect(show(inspectJsonRpc(call("POST", body, json)))).toEqual(expected);
  });

  const refused: [string, CallContent, RegExp][] = [
    ["GET", call("GET", "", json), /over GET/],
    ["an empty batch", call("POST", "[]", json), /empty/],
    ["a call without a method", call("POST", '{"jsonrpc":"2.0","id":1}', json), /without a method/],
    ["a method that is not a string", call("POST", '{"method":["a"]}', json), /without a method/],
    ["a batch member that is not an object", call("POST", '[{"method":"a"},1]', json), /not an object/],
    ["an unknown member", call("POST", '{"method":"a","methodName":"b"}', json), /unknown JSON-RPC member/],
    ["another version", call("POST", '{"jsonrpc":"3.0","method":"a"}', json), /version/],
    ["a repeated method key", call("POST", '{"method":"safe","method":"wallet_delete"}', json), /duplicate JSON key/],
    ["text/plain", call("POST", '{"method":"a"}', { "content-type": "text/plain" }), /unsupported content type/],
    ["gzip", call("POST", '{"method":"a"}', { ...json, "content-encoding": "gzip" }), /compressed/],
    ["not JSON", call("POST", "method=a", json), /not valid JSON/],
  ];
  it.each(refused)("refuses %s", (_name, c, reason) => {
    const result = inspectJsonRpc(c);
    expect(result.ok).toBe(false);
    expect(show(result)).toMatch(reason);
  });
});

describe("inspectAwsAction", () => {
  const form = { "content-type": "application/x-www-form-urlencoded; charset=utf-8" };
  const ok: [string, CallContent, string[]][] = [
    ["Query protocol in the query string", call("GET", "", {}, "Action=DescribeDBInstances&Version=2014-10-31"), ["action DescribeDBInstances"]],
    ["Query protocol in a form body", call("POST", "Action=DeleteDBSnapshot&DBSnapshotIdentifier=s1", form), ["action DeleteDBSnapshot"]],
    ["an encoded parameter name", call("POST", "Act%69on=DeleteDBSnapshot", form), ["action DeleteDBSnapshot"]],
    ["a JSON protocol target", call("POST", "{}", { "x-amz-target": "AmazonRDSv19.DeleteDBSnapshot" }), ["action DeleteDBSnapshot"]],
    ["the older Operation parameter (REQ-61)", call("GET", "", {}, "Operation=DeleteDBSnapshot"), ["action DeleteDBSnapshot"]],
    ["Operation in a form body (REQ-61)", call("POST", "Operation=DeleteDBSnapshot", form), ["action DeleteDBSnapshot"]],
    ["no action at all", call("GET", "", {}, "x=1"), []],
  ];
  it.each(ok)("%s", (_name, c, expected) => {
    expect(show(inspectAwsAction(c))).toEqual(expected);
  });

  const refused: [string, CallContent, RegExp][] = [
    ["Action twice in the query", call("GET", "", {}, "Action=DescribeDBInstances&Action=DeleteDBSnapshot"), /repeated Action/],
    ["Action twice in the body", call("POST", "Action=DescribeDBInstances&Action=DeleteDBSnapshot", form), /repeated Action/],
    ["Action in the query and the body", call("POST", "Action=DeleteDBSnapshot", form, "Action=DescribeDBInstances"), /more than once/],
    ["Action and Operation (REQ-61)", call("GET", "", {}, "Action=DescribeDBInstances&Operation=DeleteDBSnapshot"), /more than once/],
    ["Action in the query and Operation in the body (REQ-61)", call("POST", "Operation=DeleteDBSnapshot", form, "Action=DescribeDBInstances"), /more than once/],
    ["Operation twice", call("GET", "", {}, "Operation=DescribeDBInstances&Operation=DeleteDBSnapshot"), /repeated Operation/],
    ["Action and X-Amz-Target", call("POST", "{}", { "x-amz-target": "X.DeleteDBSnapshot" }, "Action=DescribeDBInstances"), /more than once/],
    ["a compressed form", call("POST", "Action=x", { ...form, "content-encoding": "gzip" }), /compressed/],
    ["a body that was not read", call("GET", undefined, {}, "Action=DescribeDBInstances"), /not read/],
    ["a body naming no action it could be read for", call("POST", "Action=DeleteDBSnapshot", { "content-type": "text/plain" }), /names no AWS action/],
    ["a body without a Content-Type beside an action in the query (REQ-65)", call("POST", "Action=DeleteDBSnapshot", {}, "Action=DescribeDBInstances"), /names no AWS action/],
    ["a text body beside an action in the query (REQ-65)", call("POST", "Action=DeleteDBSnapshot", { "content-type": "text/plain" }, "Action=DescribeDBInstances"), /names no AWS action/],
    ["a JSON body without X-Amz-Target", call("POST", '{"Action":"DeleteDBSnapshot"}', { "content-type": "application/json" }), /names no AWS action/],
  ];
  it.each(refused)("refuses %s", (_name, c, reason) => {
    expect(show(inspectAwsAction(c))).toMatch(reason);
  });
});
