import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import aws4 from "aws4";

export type SigV4Expectation = {
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  region: string;
  service: string;
  now?: number;
};

export type ReceivedForSigning = { method: string; url: string; headers: IncomingHttpHeaders | Record<string, string>; body: Buffer };

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

/**
 * Checks a received request's Signature V4 the way AWS does, but with an implementation independent
 * of the broker's signer (the `aws4` package): credential scope, date skew, signed-header coverage
 * (host, X-Amz-Date, and every X-Amz-* header, as S3 requires), payload hash, session token, and finally
 * the signature recomputed over the request exactly as received. Returns null if it verifies, else why not.
 */
export function sigV4Problem(request: ReceivedForSigning, expected: SigV4Expectation): string | null {
  const header = (name: string) => {
    const value = request.headers[name];
    return Array.isArray(value) ? value.join(", ") : value;
  };
  const match = AUTHORIZATION.exec(header("authorization") ?? "");
  if (!match) return "malformed Authorization";
  const [, keyId, date, region, service, signedList, signature] = match as unknown as string[];
  if (keyId !== expected.credentials.accessKeyId) return "unknown access key";
  if (region !== expected.region || service !== expected.service) return "wrong credential scope";

  const amzDate = header("x-amz-date") ?? "";
  const at = Date.parse(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"));
  if (!amzDate.startsWith(date!) || Number.isNaN(at)) return "bad X-Amz-Date";
  if (Math.abs((expected.now ?? Date.now()) - at) > 5 * 60_000) return "request time too skewed";

  const signed = signedList!.split(";");
  for (const required of ["host", "x-amz-date", "x-amz-content-sha256"]) {
    if (!signed.includes(required)) return `${required} not signed`;
  }
  for (const name of Object.keys(request.headers)) {
    if (name.startsWith("x-amz-") && !signed.includes(name)) return `${name} sent but not signed`;
  }
  for (const name of signed) if (header(name) === undefined) return `signed header ${name} missing`;

  const payloadHash = header("x-amz-content-sha256");
  if (payloadHash !== "UNSIGNED-PAYLOAD" && payloadHash !== createHash("sha256").update(request.body).digest("hex")) {
    return "payload hash does not match the body";
  }
  if (expected.credentials.sessionToken !== undefined && header("x-amz-security-token") !== expected.credentials.sessionToken) {
    return "wrong session token";
  }

  // extraHeadersToInclude (missing from @types/aws4) makes aws4 sign headers it skips by default (e.g. range).
  const options: aws4.Request & { extraHeadersToInclude: Record<string, boolean> } = {
    method: request.method,
    host: header("host"),
    path: request.url,
    service: expected.service,
    region: expected.region,
    headers: Object.fromEntries(signed.map((name) => [name, header(name)!])),
    extraHeadersToInclude: Object.fromEntries(signed.map((name) => [name, true])),
  };
  const recomputed = aws4.sign(options, {
    accessKeyId: expected.credentials.accessKeyId,
    secretAccessKey: expected.credentials.secretAccessKey,
  });
  const authorization = String((recomputed.headers as Record<string, string>).Authorization);
  if (!authorization.includes(`SignedHeaders=${signedList}, `)) return "signed header list differs";
  return authorization.endsWith(`Signature=${signature}`) ? null : "signature does not match";
}
