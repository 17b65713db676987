import { errors, jwtVerify, type JWTHeaderParameters } from "jose";
import { unauthenticated } from "../http/errors.js";
import {
  capabilityClaimsSchema,
  CLOCK_TOLERANCE_SECONDS,
  MAX_TOKEN_TTL_SECONDS,
  toAgentToken,
  type AgentToken,
} from "./claims.js";
import { TOKEN_ALG, type KeySet } from "./signing-keys.js";

const FORBIDDEN_HEADERS = ["jku", "x5u", "jwk", "x5c", "crit"] as const;

/**
 * Verifies an agent token against Keyward's own key set only: the algorithm is pinned, the key is picked
 * by `kid` from that set, and headers that point at other keys are refused outright.
 */
export async function verifyAgentToken(
  token: string,
  keys: KeySet,
  expected: { issuer: string; audience: string; now?: Date },
): Promise<AgentToken> {
  const resolveKey = (header: JWTHeaderParameters) => {
    if (FORBIDDEN_HEADERS.some((h) => h in header)) throw unauthenticated("invalid_token", "token header not allowed");
    const entry = typeof header.kid === "string" ? keys.publicKeys.get(header.kid) : undefined;
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
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
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
  if (claims.iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) throw unauthenticated("invalid_token", "token issued in the future");
  if (claims.exp - claims.iat > MAX_TOKEN_TTL_SECONDS) throw unauthenticated("invalid_token", "token lifetime too long");
  return toAgentToken(claims);
}
