import { errors, jwtVerify, type JWTHeaderParameters } from "jose";
import { unauthenticated } from "../http/errors.js";
import { capabilityClaimsSchema, toAgentToken, type AgentToken } from "./claims.js";
import { TOKEN_ALG, type PublicKeyEntry } from "../signing-keys/signing-keys.js";

/** Headers that would point verification at a key other than Keyward's own: refused outright. */
export const FORBIDDEN_JWT_HEADERS = ["jku", "x5u", "jwk", "x5c", "crit"] as const;

/** Finds one of Keyward's own public keys by kid (src/signing-keys/signing-keys.ts); never any other key. */
export type PublicKeyLookup = (kid: string) => PublicKeyEntry | undefined | Promise<PublicKeyEntry | undefined>;

/** verifyAgentToken bound to Keyward's own key set and configuration: what the proxy and /oauth2/* use. */
export type TokenVerifier = (token: string) => Promise<AgentToken>;

export type VerifyOptions = {
  issuer: string;
  audience: string;
  leewaySeconds: number;
  /** Tokens claiming a longer life than this are refused, however they were signed. */
  maxTtlSeconds: number;
  now?: Date;
};

const JWS_SEGMENT = /^[A-Za-z0-9_-]+$/;

/**
 * Whether a token is a compact JWS whose three segments are canonical base64url (no padding, no stray low
 * bits), so that one token has exactly one spelling: the verified-token cache (src/tokens/verified-tokens.ts)
 * remembers tokens by their exact string, and only a string that passed here is ever remembered.
 */
export function canonicalJws(token: string): boolean {
  const segments = token.split(".");
  return segments.length === 3 && segments.every((s) => JWS_SEGMENT.test(s) && Buffer.from(s, "base64url").toString("base64url") === s);
}

/**
 * Verifies an agent token against Keyward's own key set only: its spelling must be canonical, the
 * algorithm is pinned, the key is picked by `kid` from that set, and headers that point at other keys are
 * refused outright.
 */
export async function verifyAgentToken(token: string, findKey: PublicKeyLookup, expected: VerifyOptions): Promise<AgentToken> {
  if (!canonicalJws(token)) throw unauthenticated("invalid_token", "token is invalid");
  const resolveKey = async (header: JWTHeaderParameters) => {
    if (FORBIDDEN_JWT_HEADERS.some((h) => h in header)) throw unauthenticated("invalid_token", "token header not allowed");
    const entry = typeof header.kid === "string" ? await findKey(header.kid) : undefined;
    if (!entry) throw unauthenticated("invalid_token", "token signed by an unknown key");
    return entry.key;
  };
  let payload;
  try {
    ({ payload } = await jwtVerify(token, resolveKey, {
      algorithms: [TOKEN_ALG],
      issuer: expected.issuer,
      audience: expected.audience,
      typ: "at+jwt",
      clockTolerance: expected.leewaySeconds,
      requiredClaims: ["iss", "sub", "aud", "exp", "iat", "jti"],
      currentDate: expected.now,
    }));
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw unauthenticated("token_expired", "token has expired");
    if (err instanceof Error && err.name === "KeywardError") throw err;
    throw unauthenticated("invalid_token", "token is invalid");
  }
  const parsed = capabilityClaimsSchema.safeParse(payload);
  if (!parsed.success) throw unauthenticated("invalid_token", "token claims are malformed");
  const claims = parsed.data;
  const nowSeconds = Math.floor((expected.now ?? new Date()).getTime() / 1000);
  if (claims.iat > nowSeconds + expected.leewaySeconds) throw unauthenticated("invalid_token", "token issued in the future");
  if (claims.exp - claims.iat > expected.maxTtlSeconds) throw unauthenticated("invalid_token", "token lifetime too long");
  return toAgentToken(claims);
}
