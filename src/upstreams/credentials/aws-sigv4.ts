import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { z } from "zod";
import { defineKind, headerSafeText, wrongTypeMessage } from "./contract.js";

const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** Percent-encoding as SigV4 canonicalises: everything but A-Z a-z 0-9 - _ . ~ (RFC 3986 unreserved). */
const awsEncode = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());

/** Query parameters that carry a SigV4 presignature (X-Amz-Signature, -Credential, -Date, ...): ours alone sign. */
const isSigningParam = (name: string) => name.toLowerCase().startsWith("x-amz-");

/**
 * The URL as it will be signed and sent: each path segment and each query name and value re-encoded in
 * SigV4's strict encoding, so the bytes sent are the bytes signed, and the agent's own presigning
 * parameters dropped. What the path and query decode to does not change (a raw `+` in the query is a
 * space, as in form encoding).
 */
export function awsCanonicalUrl(url: URL): { url: URL; query: Record<string, string | string[]> } {
  const canonical = new URL(url.href);
  canonical.pathname = url.pathname.split("/").map((segment) => awsEncode(decodeURIComponent(segment))).join("/");
  const pairs = [...new URLSearchParams(url.search)].filter(([name]) => !isSigningParam(name));
  canonical.search = pairs.map(([name, value]) => `${awsEncode(name)}=${awsEncode(value)}`).join("&");
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of pairs) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return { url: canonical, query };
}

/**
 * `aws-sigv4`: every forwarded request is signed with AWS Signature Version 4 (@smithy/signature-v4,
 * the AWS SDK's signer) for the configured region and service. The signature covers the method, the
 * path and query actually sent, every forwarded header (host included) and the body: hashed when
 * `payload` is `signed` (the body is buffered, within the proxy's size limit), or `UNSIGNED-PAYLOAD`
 * when it is `unsigned` (the body streams; S3 accepts this, most other services do not). The agent's
 * own Authorization and every X-Amz-* header it sends are dropped (X-Amz-Copy-Source, for one, would
 * name an object outside the path the grant decided on).
 */
export const awsSigV4Kind = defineKind({
  authSchema: z.strictObject({
    type: z.literal("aws-sigv4"),
    region: z.string().regex(/^[a-z0-9-]{1,40}$/, "a region name, e.g. us-east-1"),
    service: z.string().regex(/^[a-z0-9-]{1,64}$/, "a signing service name, e.g. s3, sts, execute-api"),
    payload: z.enum(["signed", "unsigned"]).default("signed"),
  }),
  secretSchema: z.strictObject(
    {
      accessKeyId: z.string().regex(/^[A-Za-z0-9._-]{3,128}$/, "an access key id: letters, digits, . _ -"),
      secretAccessKey: headerSafeText(1024, "secretAccessKey must be a string"),
      sessionToken: headerSafeText(8192, "sessionToken must be a string").optional(),
    },
    wrongTypeMessage("the aws-sigv4 kind takes an object secret: { accessKeyId, secretAccessKey, sessionToken? }"),
  ),
  compile(auth, credentials, context) {
    const signer = new SignatureV4({
      credentials,
      region: auth.region,
      service: auth.service,
      sha256: Sha256,
      // S3 canonicalises the path as sent; every other service encodes it once more.
      uriEscapePath: auth.service !== "s3",
      // Always send X-Amz-Content-Sha256: S3 requires it, other services ignore it.
      applyChecksum: true,
    });
    // The signing key never leaves; the session token is sent, and S3 echoes the access key id in errors.
    const secrets = Object.freeze(
      [credentials.accessKeyId, credentials.secretAccessKey, credentials.sessionToken].filter((s): s is string => s !== undefined),
    );
    return {
      injectedSecrets: () => secrets,
      buffersBody: auth.payload === "signed",
      ownsHeader: (header) => header === "authorization" || header.startsWith("x-amz-"),
      async prepare(request) {
        const { url, query } = awsCanonicalUrl(request.url);
        const headers: Record<string, string> = { ...request.headers, host: url.host };
        if (auth.payload === "unsigned") headers["x-amz-content-sha256"] = UNSIGNED_PAYLOAD;
        const signed = await signer.sign(
          new HttpRequest({
            method: request.method,
            protocol: url.protocol,
            hostname: url.hostname,
            port: url.port ? Number(url.port) : undefined,
            path: url.pathname,
            query,
            headers,
            body: request.body,
          }),
          { signingDate: new Date(context.now()) },
        );
        request.url = url;
        request.headers = signed.headers;
      },
    };
  },
});
