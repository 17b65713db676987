import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { renderTable, s3OperationTable, TABLE_FILE } from "../../../scripts/s3-operations.js";
import { bodyNeeded, decide, type Decision, type GrantPolicy, type TargetPolicy, type TokenCapabilities } from "../../../src/policy/decide.js";
import { normalisePath } from "../../../src/policy/paths.js";
import { presetsForHost } from "../../../src/policy/presets/index.js";
import { parseQuery, queryMatches, readQueryLeniently } from "../../../src/policy/query.js";
import { httpRule } from "../../../src/policy/rules.js";
import { s3AddressingOf, s3OperationsOf } from "../../../src/policy/s3.js";
import { countersFor } from "../../../src/budgets/budgets.js";
import { title } from "../../security/cases.js";

describe("query rules", () => {
  const cases: [Record<string, string>, string, boolean][] = [
    [{ delete: "*" }, "delete", true],
    [{ delete: "*" }, "delete=", true],
    [{ delete: "*" }, "x=1&delete=yes", true],
    [{ delete: "*" }, "Delete", true],
    [{ delete: "*" }, "%64elete", true],
    [{ delete: "*" }, "deleted", false],
    [{ delete: "*" }, "", false],
    [{ "list-type": "2" }, "list-type=2", true],
    [{ "list-type": "2" }, "list-type=1", false],
    [{ prefix: "logs/*" }, "prefix=logs%2F2024", true],
    [{ prefix: "logs/*" }, "prefix=data", false],
    [{ prefix: "a b" }, "prefix=a+b", true],
    [{ delete: "*", versionId: "*" }, "delete&versionId=3", true],
    [{ delete: "*", versionId: "*" }, "delete", false],
    [{ x: "1" }, "x=2&x=1", true],
    // REQ-38: every reading a lenient upstream may apply (rules only take something away)
    [{ force: "*" }, "a=1;force=1", true], // `;` as a separator
    [{ force: "*" }, "force[]=1", true], // PHP and Rails arrays
    [{ force: "*" }, "force[x]=1", true],
    [{ force: "*" }, "%2566orce=1", true], // decoded twice
    [{ force: "*" }, "%EF%BD%86orce=1", true], // ｆ U+FF46 (NFKC)
    [{ force: "*" }, "force%00x=1", true], // cut at a NUL
    [{ force: "*" }, "+force=1", true], // PHP drops leading spaces
    [{ force: "*" }, "%3Fforce=1", true], // a leading `?`, as URLSearchParams drops it
    [{ force: "*" }, "?force", true],
    [{ force: "*" }, "forced=1&x[force]=1&q=force&force_=1", false],
    [{ dry_run: "false" }, "dry.run=false", true], // PHP: `.` and spaces in names become `_`
    [{ dry_run: "false" }, "dry+run=false", true],
    [{ dry_run: "false" }, "dry%5Brun=false", true], // an unmatched `[` too
    [{ dry_run: "false" }, "dry_run=f%2561lse", true], // values decoded twice
    [{ dry_run: "false" }, "dry_run=%EF%BD%86alse", true], // and in NFKC
    [{ dry_run: "false" }, "dry_run=false%00x", true],
    [{ dry_run: "false" }, "dry_run=true;x=false", false], // a value split off is another parameter's
    [{ dry_run: "false" }, "dry-run=false&dry.run=true", false],
    [{ "dry.run": "*" }, "dry.run=1", true], // the name as written still matches
    [{ FORCE: "*" }, "force", true],
  ];
  it.each(cases)("%j against ?%s → %s", (rule, query, expected) => {
    expect(queryMatches(rule, readQueryLeniently(query))).toBe(expected);
  });

  it("REQ-38: the lenient reading only adds: a rule matching the strict reading matches it too", () => {
    const text = fc.string({ unit: fc.constantFrom(..."af=&;%2566[]._+? F\u0000ｆ") });
    const rule = fc.dictionary(fc.constantFrom("f", "a", "ff", "f_f", "F"), fc.constantFrom("*", "a", "", "f*"), { minKeys: 1, maxKeys: 2 });
    fc.assert(
      fc.property(rule, text, (r, query) => {
        if (queryMatches(r, parseQuery(query))) expect(queryMatches(r, readQueryLeniently(query))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("a rule may be a query alone; an empty one is refused", () => {
    expect(httpRule.safeParse({ method: "POST", query: { delete: "*" } }).success).toBe(true);
    expect(httpRule.safeParse({ query: { delete: "*" } }).success).toBe(true);
    expect(httpRule.safeParse({ query: {} }).success).toBe(false);
    expect(httpRule.safeParse({ query: { "a=b": "*" } }).success).toBe(false);
  });
});

describe("S3 operations from AWS's service model", () => {
  it("the committed table is what the installed @aws-sdk/client-s3 says", () => {
    expect(readFileSync(TABLE_FILE, "utf8")).toBe(renderTable(s3OperationTable()));
  });

  it("knows addressing styles from AWS hosts", () => {
    expect(s3AddressingOf("s3.eu-west-1.amazonaws.com")).toBe("path");
    expect(s3AddressingOf("s3.amazonaws.com")).toBe("path");
    expect(s3AddressingOf("s3-us-west-2.amazonaws.com")).toBe("path");
    expect(s3AddressingOf("photos.s3.eu-west-1.amazonaws.com")).toBe("virtual-hosted");
    expect(s3AddressingOf("s3-backups.s3.dualstack.eu-west-1.amazonaws.com")).toBe("virtual-hosted");
    expect(s3AddressingOf("my.dotted.bucket.s3.amazonaws.com")).toBe("virtual-hosted");
    expect(s3AddressingOf("127.0.0.1")).toBe("path");
    expect(s3AddressingOf("[::1]")).toBe("path");
    expect(s3AddressingOf("minio.internal")).toBe("unknown");
    expect(presetsForHost("photos.s3.eu-west-1.amazonaws.com").map((p) => p.id)).toEqual(["aws-s3"]);
    expect(presetsForHost("s3.us-east-1.amazonaws.com").map((p) => p.id)).toEqual(["aws-s3"]);
    expect(presetsForHost("rds.us-east-1.amazonaws.com").map((p) => p.id)).toEqual(["aws-rds"]);
  });

  const ops = (method: string, host: string, path: string, query = "", headers = {}) =>
    s3OperationsOf({ method, host, fullPath: path.split("/").filter(Boolean), query: parseQuery(query), headers });
  const PATH = "s3.eu-west-1.amazonaws.com";
  const VIRTUAL = "photos.s3.eu-west-1.amazonaws.com";
  const cases: [string, string, string, string, string[]][] = [
    ["DELETE", PATH, "/photos/a/b.jpg", "", ["DeleteObject"]],
    ["DELETE", PATH, "/photos/a.jpg", "versionId=3", ["DeleteObject"]],
    ["DELETE", VIRTUAL, "/a.jpg", "", ["DeleteObject"]],
    ["DELETE", PATH, "/photos/a.jpg", "uploadId=9", ["AbortMultipartUpload"]],
    ["DELETE", PATH, "/photos/a.jpg", "tagging", ["DeleteObjectTagging"]],
    ["POST", PATH, "/photos", "delete", ["DeleteObjects"]],
    ["POST", PATH, "/photos/", "delete=", ["DeleteObjects"]],
    ["POST", VIRTUAL, "/", "delete", ["DeleteObjects"]],
    ["DELETE", PATH, "/photos", "", ["DeleteBucket"]],
    ["DELETE", VIRTUAL, "/", "", ["DeleteBucket"]],
    ["DELETE", PATH, "/photos", "policy", ["DeleteBucketPolicy"]],
    ["PUT", PATH, "/photos", "lifecycle", ["PutBucketLifecycleConfiguration"]],
    ["PUT", PATH, "/photos", "versioning", ["PutBucketVersioning"]],
    ["PUT", PATH, "/photos/k", "retention", ["PutObjectRetention"]],
    ["PUT", PATH, "/photos/k", "", ["PutObject"]],
    ["GET", PATH, "/photos", "list-type=2&prefix=a", ["ListObjectsV2"]],
    ["GET", PATH, "/", "", ["ListBuckets", "ListDirectoryBuckets"]],
    // A host that does not say its addressing style: both readings count.
    ["DELETE", "minio.internal", "/photos", "", ["DeleteBucket", "DeleteObject"]],
    ["POST", "minio.internal", "/", "delete", ["DeleteObjects"]],
    ["PUT", "minio.internal", "/photos", "versioning", ["PutBucketVersioning", "PutObject"]],
    ["GET", "minio.internal", "/", "", ["ListBuckets", "ListDirectoryBuckets", "ListObjects"]],
    ["DELETE", "127.0.0.1", "/photos", "", ["DeleteBucket"]],
  ];
  it.each(cases)("%s %s%s?%s is %j", (method, host, path, query, expected) => {
    expect(ops(method, host, path, query).sort()).toEqual(expected.sort());
  });

  it("reads operations named by a required header", () => {
    expect(ops("PUT", PATH, "/photos/k", "", { "x-amz-copy-source": "/other/k" })).toEqual(["CopyObject"]);
    expect(ops("PUT", PATH, "/photos/k", "partNumber=1&uploadId=u")).toEqual(["UploadPart"]);
  });
});

describe("decide with the aws-s3 preset", () => {
  const token: TokenCapabilities = { agentId: "a", grantId: "g", upstream: "s3", methods: ["GET", "PUT", "POST", "DELETE"], paths: ["/**"] };
  const grant: GrantPolicy = {
    id: "g", upstream: "s3", methods: ["GET", "PUT", "POST", "DELETE"], paths: ["/**"], deny: [], agentIds: ["a"], environments: ["prod"],
    requiresApproval: false, destructive: [], requiresApprovalFor: [], graphql: null, jsonrpc: null, allowProtected: [], budgets: null,
  };
  const target: TargetPolicy = { environment: "prod", environmentRequiresApproval: false, protocol: "http", host: "s3.eu-west-1.amazonaws.com", basePath: ["photos"], presets: ["aws-s3"] };
  const call = (method: string, raw: string, query = "") => {
    const path = normalisePath(raw);
    if (!path.ok) throw new Error(path.reason);
    return { upstream: "s3", method, path: path.path, target, query, headers: { "content-type": "application/xml" }, body: undefined };
  };
  const outcome = (d: Decision) => (d.allow ? `allow ${(d.operations ?? []).join(",")}` : `${d.code}: ${d.reason.split(" ")[0]}`);

  const cases: [string, string, string, Partial<GrantPolicy>, string][] = [
    ["GET", "/a.jpg", "", {}, "allow aws-s3.GetObject"],
    ["PUT", "/a.jpg", "", {}, "allow aws-s3.PutObject"],
    ["DELETE", "/a.jpg", "", {}, "protected_operation: aws-s3.DeleteObject"],
    ["POST", "/", "delete", {}, "protected_operation: aws-s3.DeleteObject"],
    ["POST", "/", "Delete=", {}, "protected_operation: aws-s3.DeleteObject"],
    ["PUT", "/", "lifecycle", {}, "protected_operation: aws-s3.PutBucketLifecycleConfiguration"],
    ["PUT", "/", "versioning", {}, "protected_operation: aws-s3.PutBucketVersioning"],
    ["PUT", "/", "policy", {}, "protected_operation: aws-s3.PutBucketPolicy"],
    ["DELETE", "/", "policy", {}, "protected_operation: aws-s3.DeleteBucketPolicy"],
    ["DELETE", "/", "replication", {}, "protected_operation: aws-s3.DeleteBucketReplication"],
    ["PUT", "/k", "retention", {}, "protected_operation: aws-s3.PutObjectRetention"],
    ["PUT", "/k", "legal-hold", {}, "protected_operation: aws-s3.PutObjectLegalHold"],
    ["DELETE", "/", "", {}, "protected_operation: aws-s3.DeleteBucket"],
    ["DELETE", "/k", "tagging", {}, "allow aws-s3.DeleteObjectTagging"],
    // The incident: a grant that "never deletes" by method alone, and the same grant with a query rule.
    ["POST", "/", "delete", { deny: [{ method: "DELETE" }] }, "protected_operation: aws-s3.DeleteObject"],
    ["POST", "/", "delete", { deny: [{ method: "POST", query: { delete: "*" } }] }, "deny_rule: deny[0]"],
    ["POST", "/k", "uploads", { deny: [{ method: "POST", query: { delete: "*" } }] }, "allow aws-s3.CreateMultipartUpload"],
    ["POST", "/", "delete", { allowProtected: ["aws-s3.DeleteObject"] }, "approval_required: aws-s3.DeleteObject"],
  ];
  it.each(cases)("%s %s?%s with %j → %s", (method, path, query, grantChanges, expected) => {
    expect(outcome(decide(token, { ...grant, ...grantChanges }, call(method, path, query)))).toBe(expected);
  });

  it("a bulk delete a human approved is named by what it does and how often: aws-s3.DeleteObject ×N", () => {
    const approved = { ...token, approval: { protectedOperations: ["aws-s3.DeleteObject"] } };
    const allowing = { ...grant, allowProtected: ["aws-s3.DeleteObject"] };
    const keys = Array.from({ length: 1000 }, (_, i) => `<Object><Key>k${i}</Key></Object>`).join("");
    const body = new TextEncoder().encode(`<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${keys}<Quiet>true</Quiet></Delete>`);
    expect(outcome(decide(approved, allowing, { ...call("POST", "/", "delete"), body }))).toBe("allow aws-s3.DeleteObject ×1000");
    // The proxy reads that body (within the inspection limit) only for such calls on such upstreams.
    const xml = { "content-type": "application/xml" };
    expect(bodyNeeded(token, grant, target, "POST", xml, "delete")).toBe(true);
    expect(bodyNeeded(token, grant, target, "POST", xml, "uploads")).toBe(false);
    expect(bodyNeeded(token, grant, { ...target, presets: [] }, "POST", xml, "delete")).toBe(false);
  });

  it(`${title("REQ-75")}`, () => {
    const approved = { ...token, approval: { protectedOperations: ["aws-s3.DeleteObject"] } };
    const budgeted = { ...grant, allowProtected: ["aws-s3.DeleteObject"], budgets: { perGrant: { maxDestructiveCalls: 5 } } };
    const deleting = (xml: string, headers: Record<string, string> = {}) => ({
      ...call("POST", "/", "delete"),
      headers: { "content-type": "application/xml", ...headers },
      body: new TextEncoder().encode(xml),
    });
    const objects = (n: number, element = "Object") => Array.from({ length: n }, (_, i) => `<${element}><Key>k${i}</Key></${element}>`).join("");
    const destructive = (d: Decision) => (d.allow ? d.destructive : `${d.code}: ${d.reason}`);
    // Each object is one destructive unit, as each destructive field of a GraphQL call is.
    expect(destructive(decide(approved, budgeted, deleting(`<Delete>${objects(1000)}</Delete>`)))).toBe(1000);
    // …which the budget cannot give (src/budgets: a take larger than its capacity is refused, 429).
    const call1000 = { jti: "t", ancestors: [], tokenExpiresAt: new Date(), grantId: "g", destructive: 1000, now: 0 };
    expect(countersFor(budgeted.budgets, call1000)).toContainEqual(expect.objectContaining({ limit: "perGrant.maxDestructiveCalls", amount: 1000, capacity: 5 }));
    expect(destructive(decide(approved, budgeted, deleting(`<Delete>${objects(1)}</Delete>`)))).toBe(1);
    // Servers that read XML by local name (Go's encoding/xml: MinIO) take prefixed elements as objects.
    expect(destructive(decide(approved, budgeted, deleting(`<s3:Delete xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">${objects(7, "s3:Object")}</s3:Delete>`)))).toBe(7);
    // Bodies whose objects the bytes do not show are refused under a budget on deletes, never forwarded.
    const uncountable: [string, Record<string, string>][] = [
      [`<!DOCTYPE Delete [<!ENTITY o "${objects(1)}">]><Delete>&o;&o;&o;</Delete>`, {}],
      [`<Delete>${objects(3)}</Delete>`, { "content-encoding": "gzip" }],
      [`<Delete>${objects(3)}</Delete>`, { "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" }],
      [`\ufeff<Delete>${objects(3)}</Delete>`.replace(/./g, (c) => `${c}\0`), {}], // UTF-16LE
    ];
    for (const [xml, headers] of uncountable) {
      const d = decide(approved, budgeted, deleting(xml, headers));
      expect(d.allow ? d.destructive : d.code, xml.slice(0, 40)).toBe("uninspectable");
    }
    // Without a budget on deletes, such a body is judged as before: one destructive call, its count unknown.
    const unbudgeted = decide(approved, { ...budgeted, budgets: { perGrant: { maxCalls: 10 } } }, deleting(uncountable[0]![0]));
    expect(unbudgeted).toMatchObject({ allow: true, destructive: 1, operations: ["aws-s3.DeleteObject ×?"] });
  });

  it("a query rule tags calls destructive and asks for approval", () => {
    const tagged = { ...grant, destructive: [{ query: { "legal-hold": "*" } }], requiresApprovalFor: [{ method: "PUT" as const, query: { tagging: "*" } }] };
    const d = decide(token, tagged, call("GET", "/k", "legal-hold"));
    expect(d.allow && d.destructive).toBe(1);
    expect(outcome(decide(token, tagged, call("PUT", "/k", "tagging")))).toBe("approval_required: requiresApprovalFor[0]");
  });
});
