import { z } from "zod";
import { HTTP_METHODS, type TokenCapabilities } from "../policy/decide.js";

/** Hard ceiling on any token's life, whatever a grant or the configuration says. */
export const MAX_TOKEN_TTL_SECONDS = 3600;
/** How many token exchanges deep a token may be: bounds the `chain` claim and so the token's size. */
export const MAX_EXCHANGE_DEPTH = 5;

/** RFC 8693 `act`: on an exchanged token, the agent that exchanged its token for this one. */
const actorClaim = z.strictObject({ sub: z.string().min(1), client_id: z.string().min(1) });

/** Keyward's own claims, checked after the signature: a well-signed token of another shape is refused. */
export const capabilityClaimsSchema = z
  .object({
    sub: z.string().min(1),
    jti: z.string().min(1),
    iat: z.number().int(),
    exp: z.number().int(),
    client_id: z.string().min(1),
    scope: z.string(),
    grant: z.string().min(1),
    cap: z.strictObject({
      upstream: z.string().min(1),
      methods: z.array(z.enum(HTTP_METHODS)).min(1),
      paths: z.array(z.string().min(1)).min(1),
    }),
    act: actorClaim.optional(),
    /** Exchanged tokens only: the jtis of every token this one descends from, root first, parent last. */
    chain: z.array(z.string().min(1)).min(1).max(MAX_EXCHANGE_DEPTH).optional(),
    /** Exchanged tokens only: the root token's iat, which selector revocations compare with. */
    root_iat: z.number().int().optional(),
  })
  .refine(
    (c) => (c.chain === undefined) === (c.root_iat === undefined) && (c.chain === undefined) === (c.act === undefined),
    "act, chain and root_iat come together",
  )
  .refine((c) => c.root_iat === undefined || c.root_iat <= c.iat, "root_iat after iat");

export type TokenClaims = z.infer<typeof capabilityClaimsSchema>;

export type AgentToken = TokenCapabilities & {
  jti: string;
  clientId: string;
  scope: string;
  issuedAt: number;
  expiresAt: number;
  /** jtis this token was exchanged from, root first; empty for a token issued to a client directly. */
  ancestors: string[];
  /** When the root of the chain was issued: this token's own iat unless it was exchanged. */
  rootIssuedAt: number;
  actor?: { sub: string; client_id: string };
};

export function toAgentToken(claims: TokenClaims): AgentToken {
  return {
    jti: claims.jti,
    agentId: claims.sub,
    clientId: claims.client_id,
    grantId: claims.grant,
    upstream: claims.cap.upstream,
    methods: claims.cap.methods,
    paths: claims.cap.paths,
    scope: claims.scope,
    issuedAt: claims.iat,
    expiresAt: claims.exp,
    ancestors: claims.chain ?? [],
    rootIssuedAt: claims.root_iat ?? claims.iat,
    ...(claims.act && { actor: claims.act }),
  };
}

/** OAuth-style scope string for the response and the token: one `upstream:METHOD` entry per method. */
export function scopeOf(upstream: string, methods: readonly string[]): string {
  return methods.map((m) => `${upstream}:${m}`).join(" ");
}
