import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { awsCanonicalUrl, awsSigV4Kind } from "../../../../src/upstreams/credentials/aws-sigv4.js";
import { sigV4Problem } from "../../../helpers/sigv4-verifier.js";
import { anyGrant, context, outgoing } from "./request.js";

const NOW = Date.parse("2026-01-02T03:04:05Z");
const CREDENTIALS = { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" };

const signer = (auth: { region?: string; service: string; payload?: "signed" | "unsigned" }, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = CREDENTIALS) =>
  awsSigV4Kind.compile(awsSigV4Kind.authSchema.parse({ type: "aws-sigv4", region: "eu-west-1", ...auth }), credentials, context({ now: () => NOW }));

/** What the upstream would receive for this prepared request. */
const received = (request: ReturnType<typeof outgoing>) => ({
  method: request.method,
  url: request.url.pathname + request.url.search,
  headers: request.headers,
  body: Buffer.from(request.body ?? new Uint8Array()),
});

describe("awsCanonicalUrl", () => {
  const cases: [string, string, string][] = [
    ["https://b.s3.test/", "/", ""],
    ["https://b.s3.test/key", "/key", ""],
    // sub-delimiters the proxy leaves raw are encoded, unreserved characters are not
    ["https://b.s3.test/a%20(1)!'*.txt", "/a%20%281%29%21%27%2A.txt", ""],
    ["https://b.s3.test/a$&+,=:@b", "/a%24%26%2B%2C%3D%3A%40b", ""],
    ["https://b.s3.test/~a-b_c.d/", "/~a-b_c.d/", ""],
    ["https://b.s3.test/%C3%BC", "/%C3%BC", ""],
    // query: names and values strictly encoded, order kept, a raw + is a space
    ["https://b.s3.test/?list-type=2&prefix=a+b", "/", "?list-type=2&prefix=a%20b"],
    ["https://b.s3.test/?prefix=a%2Bb&delimiter=%2F", "/", "?prefix=a%2Bb&delimiter=%2F"],
    ["https://b.s3.test/?acl", "/", "?acl="],
    ["https://b.s3.test/?b=2&a=1&b=1", "/", "?b=2&a=1&b=1"],
    ["https://b.s3.test/?q=(x)*!", "/", "?q=%28x%29%2A%21"],
    // the agent's own presigning parameters are dropped
    ["https://b.s3.test/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA%2F&x-amz-date=1&versionId=3", "/k", "?versionId=3"],
  ];
  it.each(cases)("%s → %s %s", (input, path, search) => {
    const { url } = awsCanonicalUrl(new URL(input));
    expect(url.pathname).toBe(path);
    expect(url.search).toBe(search);
    expect(url.origin).toBe(new URL(input).origin);
  });

  it("gives the signer the decoded query, repeated names as lists", () => {
    expect(awsCanonicalUrl(new URL("https://x.test/?b=2&a=1+1&b=1&X-Amz-Date=x")).query).toEqual({ b: ["2", "1"], a: "1 1" });
  });

  it("does not change what the path and query decode to", () => {
    const input = new URL("https://x.test/a%20(1)/%C3%BC$?x=a+b&y=%26");
    const { url } = awsCanonicalUrl(input);
    expect(url.pathname.split("/").map(decodeURIComponent)).toEqual(input.pathname.split("/").map(decodeURIComponent));
    expect([...url.searchParams]).toEqual([...input.searchParams]);
  });
});

describe("aws-sigv4 kind", () => {
  it("signs an S3 GET with a query so that an independent implementation verifies it", async () => {
    const request = outgoing({ url: "https://bucket.s3.test/photos/a%20(1).jpg?versionId=3&response-content-type=image/jpeg", headers: { accept: "*/*", "x-custom": " a  b " } });
    await signer({ service: "s3", payload: "unsigned" }).prepare(request, anyGrant);
    expect(request.headers.host).toBe("bucket.s3.test");
    expect(request.headers["x-amz-date"]).toBe("20260102T030405Z");
    expect(request.headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
    expect(request.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\/20260102\/eu-west-1\/s3\/aws4_request, SignedHeaders=accept;host;x-amz-content-sha256;x-amz-date;x-custom, Signature=[0-9a-f]{64}$/);
    expect(request.url.pathname + request.url.search).toBe("/photos/a%20%281%29.jpg?versionId=3&response-content-type=image%2Fjpeg");
    expect(sigV4Problem(received(request), { credentials: CREDENTIALS, region: "eu-west-1", service: "s3", now: NOW })).toBeNull();
  });

  it("hashes a buffered body for a signed payload (STS-style form POST)", async () => {
    const body = new TextEncoder().encode("Action=GetCallerIdentity&Version=2011-06-15");
    const request = outgoing({ method: "POST", url: "https://sts.test/", headers: { "content-type": "application/x-www-form-urlencoded", "content-length": String(body.length) }, body });
    await signer({ region: "us-east-1", service: "sts" }).prepare(request, anyGrant);
    expect(request.headers["x-amz-content-sha256"]).toBe(createHash("sha256").update(body).digest("hex"));
    expect(sigV4Problem(received(request), { credentials: CREDENTIALS, region: "us-east-1", service: "sts", now: NOW })).toBeNull();
  });

  it("double-encodes the path for services other than S3, as they expect", async () => {
    const request = outgoing({ url: "https://api.execute-api.test/prod/items/a%20b" });
    await signer({ service: "execute-api" }).prepare(request, anyGrant);
    expect(sigV4Problem(received(request), { credentials: CREDENTIALS, region: "eu-west-1", service: "execute-api", now: NOW })).toBeNull();
  });

  it("adds and signs the session token", async () => {
    const credentials = { ...CREDENTIALS, accessKeyId: "ASIAEXAMPLE", sessionToken: "FwoGZXIvYXdzEXAMPLE//token" };
    const request = outgoing({ url: "https://bucket.s3.test/k" });
    await signer({ service: "s3" }, credentials).prepare(request, anyGrant);
    expect(request.headers["x-amz-security-token"]).toBe(credentials.sessionToken);
    expect(request.headers.authorization).toContain("x-amz-security-token");
    expect(sigV4Problem(received(request), { credentials, region: "eu-west-1", service: "s3", now: NOW })).toBeNull();
  });

  it("a signature does not survive a change to the method, path, query, a header or the body", async () => {
    const body = new TextEncoder().encode("hello");
    const request = outgoing({ method: "PUT", url: "https://bucket.s3.test/k?x=1", headers: { "content-type": "text/plain" }, body });
    await signer({ service: "s3" }).prepare(request, anyGrant);
    const ok = received(request);
    const expected = { credentials: CREDENTIALS, region: "eu-west-1", service: "s3", now: NOW };
    expect(sigV4Problem(ok, expected)).toBeNull();
    expect(sigV4Problem({ ...ok, method: "DELETE" }, expected)).toBe("signature does not match");
    expect(sigV4Problem({ ...ok, url: "/other?x=1" }, expected)).toBe("signature does not match");
    expect(sigV4Problem({ ...ok, url: "/k?x=2" }, expected)).toBe("signature does not match");
    expect(sigV4Problem({ ...ok, headers: { ...ok.headers, "content-type": "text/html" } }, expected)).toBe("signature does not match");
    expect(sigV4Problem({ ...ok, body: Buffer.from("HELLO") }, expected)).toBe("payload hash does not match the body");
    expect(sigV4Problem(ok, { ...expected, credentials: { ...CREDENTIALS, secretAccessKey: "other" } })).toBe("signature does not match");
  });

  it("replaces whatever signing headers are already on the request", async () => {
    const request = outgoing({ url: "https://bucket.s3.test/k", headers: { authorization: "AWS4-HMAC-SHA256 forged", "x-amz-date": "19990101T000000Z", date: "Fri, 01 Jan 1999 00:00:00 GMT" } });
    await signer({ service: "s3" }).prepare(request, anyGrant);
    expect(request.headers["x-amz-date"]).toBe("20260102T030405Z");
    expect(request.headers.date).toBeUndefined();
    expect(request.headers.authorization).not.toContain("forged");
    expect(sigV4Problem(received(request), { credentials: CREDENTIALS, region: "eu-west-1", service: "s3", now: NOW })).toBeNull();
  });

  it.each([
    ["authorization", true],
    ["x-amz-date", true],
    ["x-amz-security-token", true],
    ["x-amz-content-sha256", true],
    ["x-amz-copy-source", true],
    ["x-amz-meta-owner", true],
    ["content-type", false],
    ["x-amzn-trace-id", false],
  ])("owns %s: %s", (header, owned) => {
    expect(signer({ service: "s3" }).ownsHeader(header)).toBe(owned);
  });

  it("buffers the body only for a signed payload", () => {
    expect(signer({ service: "s3", payload: "signed" }).buffersBody).toBe(true);
    expect(signer({ service: "s3", payload: "unsigned" }).buffersBody).toBe(false);
  });
});
