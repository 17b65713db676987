import { decodeJwt, errors, importJWK, jwtVerify, type JWTHeaderParameters } from "jose";
import { z } from "zod";
import { findUnstorableText } from "../http/text.js";
import { FORBIDDEN_JWT_HEADERS } from "../tokens/verify.js";

/** RFC 7523 client authentication: the agent signs a short JWT with a key it registered beforehand. */
export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** Asymmetric algorithms only: a shared-secret HMAC assertion would need Keyward to hold the secret. */
export const CLIENT_ASSERTION_ALGS = ["ES256", "ES384", "EdDSA", "PS256", "RS256"] as const;

/** An assertion may live at most this long; its jti is remembered until then to refuse a replay. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;

const MIN_RSA_MODULUS_BYTES = 256; // 2048 bits
const b64 = z.string().min(1).max(1000).regex(/^[A-Za-z0-9_-]+$/, "base64url");

/**
 * A registered public key. Only public members are accepted (private ones such as `d` are unknown
 * fields, so refused), and `alg` is required: the key is used with that algorithm and no other.
 */
const agentJwk = z
  .strictObject({
    kty: z.enum(["EC", "OKP", "RSA"]),
    kid: z.string().min(1).max(100),
    alg: z.enum(CLIENT_ASSERTION_ALGS),
    use: z.literal("sig").optional(),
    crv: z.enum(["P-256", "P-384", "Ed25519"]).optional(),
    x: b64.optional(),
    y: b64.optional(),
    n: b64.optional(),
    e: b64.optional(),
  })
  .refine((k) => k.kty !== "RSA" || (k.n !== undefined && Buffer.from(k.n, "base64url").length >= MIN_RSA_MODULUS_BYTES), {
    message: "RSA keys must be at least 2048 bits",
  });
export type AgentJwk = z.infer<typeof agentJwk>;

export const agentJwksBody = z
  .strictObject({ keys: z.array(agentJwk).max(5) })
  .refine((s) => new Set(s.keys.map((k) => k.kid)).size === s.keys.length, "kids must be unique");

/** Whether each key really is a key for its declared algorithm (a mismatched `crv`/`kty` is refused). */
export async function unusableKeys(keys: readonly AgentJwk[]): Promise<string[]> {
  const bad: string[] = [];
  for (const jwk of keys) {
    try {
      await importJWK({ ...jwk }, jwk.alg);
    } catch {
      bad.push(jwk.kid);
    }
  }
  return bad;
}

/** The client an assertion claims to come from, read before verification only to find its keys. */
export function assertionIssuer(assertion: string): string | undefined {
  try {
    const { iss } = decodeJwt(assertion);
    return typeof iss === "string" ? iss : undefined;
  } catch {
    return undefined;
  }
}

export class AssertionError extends Error {}

/**
 * Verifies a private_key_jwt client assertion (RFC 7523 §3): signed by one of the client's registered
 * keys (picked by `kid`, with that key's own algorithm), `iss` = `sub` = the client id, `aud` Keyward's
 * issuer identifier as its only value (draft-ietf-oauth-rfc7523bis), a `jti`, and an `exp` no further than MAX_ASSERTION_LIFETIME_SECONDS ahead. Replay is
 * checked by the caller, which remembers the jti until `rememberUntil`.
 */
export async function verifyClientAssertion(
  assertion: string,
  keys: readonly AgentJwk[],
  expected: { clientId: string; issuer: string; leewaySeconds: number; now?: Date },
): Promise<{ jti: string; rememberUntil: Date }> {
  const resolveKey = async (header: JWTHeaderParameters) => {
    if (FORBIDDEN_JWT_HEADERS.some((h) => h in header)) throw new AssertionError("assertion header not allowed");
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk) throw new AssertionError("assertion signed by an unregistered key");
    if (header.alg !== jwk.alg) throw new AssertionError("assertion algorithm does not match the key");
    return importJWK({ ...jwk }, jwk.alg);
  };
  let payload;
  try {
    ({ payload } = await jwtVerify(assertion, resolveKey, {
      algorithms: [...CLIENT_ASSERTION_ALGS],
      issuer: expected.clientId,
      subject: expected.clientId,
      clockTolerance: expected.leewaySeconds,
      requiredClaims: ["iss", "sub", "aud", "exp", "jti"],
      currentDate: expected.now,
    }));
  } catch (err) {
    if (err instanceof AssertionError) throw err;
    if (err instanceof errors.JWTExpired) throw new AssertionError("assertion has expired");
    throw new AssertionError("assertion is invalid");
  }
  const nowSeconds = Math.floor((expected.now ?? new Date()).getTime() / 1000);
  const { exp, jti, aud } = payload as { exp: number; jti: unknown; aud: string | string[] };
  // Checked here, after the signature, so that a well-signed assertion with the wrong audience is told which
  // to use. An assertion addressed to another server too is one that server holds and could present here;
  // and one addressed to Keyward's token endpoint URL may have been signed for another server whose metadata
  // names that URL as its own endpoint (the 2025 audience-injection attack). RFC 7523bis: the issuer
  // identifier, as the only value; the token endpoint URL must not be accepted.
  const audiences = Array.isArray(aud) ? aud : [aud];
  if (audiences.length !== 1 || audiences[0] !== expected.issuer) {
    throw new AssertionError(`assertion aud must be Keyward's issuer identifier alone: ${expected.issuer} (RFC 7523bis: not the token endpoint URL)`);
  }
  if (exp > nowSeconds + MAX_ASSERTION_LIFETIME_SECONDS + expected.leewaySeconds) {
    throw new AssertionError(`assertion must expire within ${MAX_ASSERTION_LIFETIME_SECONDS} seconds`);
  }
  // The jti is stored to refuse a replay, and PostgreSQL fails the query on a NUL or an unpaired surrogate.
  if (typeof jti !== "string" || jti.length === 0 || jti.length > 200 || findUnstorableText(jti) !== null) {
    throw new AssertionError("assertion jti is invalid");
  }
  return { jti, rememberUntil: new Date((exp + expected.leewaySeconds) * 1000) };
}
