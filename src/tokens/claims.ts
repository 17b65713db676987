import { z } from "zod";
import { HTTP_METHODS, type TokenCapabilities } from "../policy/decide.js";

/** Hard ceiling on any token's life, whatever a grant says. */
export const MAX_TOKEN_TTL_SECONDS = 3600;
export const CLOCK_TOLERANCE_SECONDS = 5;

/** Keyward's own claims, checked after the signature: a well-signed token of another shape is refused. */
export const capabilityClaimsSchema = z.object({
  sub: z.string().min(1),
  jti: z.string().min(1),
  iat: z.number().int(),
  exp: z.number().int(),
  client_id: z.string().min(1),
  grant: z.string().min(1),
  cap: z.strictObject({
    upstream: z.string().min(1),
    methods: z.array(z.enum(HTTP_METHODS)).min(1),
    paths: z.array(z.string().min(1)).min(1),
  }),
});

export type AgentToken = TokenCapabilities & { jti: string; clientId: string; issuedAt: number; expiresAt: number };

export function toAgentToken(claims: z.infer<typeof capabilityClaimsSchema>): AgentToken {
  return {
    jti: claims.jti,
    agentId: claims.sub,
    clientId: claims.client_id,
    grantId: claims.grant,
    upstream: claims.cap.upstream,
    methods: claims.cap.methods,
    paths: claims.cap.paths,
    issuedAt: claims.iat,
    expiresAt: claims.exp,
  };
}

/** OAuth-style scope string for the response and the token: one `upstream:METHOD` entry per method. */
export function scopeOf(upstream: string, methods: readonly string[]): string {
  return methods.map((m) => `${upstream}:${m}`).join(" ");
}
