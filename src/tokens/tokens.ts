import type { Agent, PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { forbidden, notFound, type KeywardError } from "../http/errors.js";
import { HTTP_METHODS } from "../policy/decide.js";
import type { Grants } from "../grants/grants.js";
import { pathPattern } from "../grants/grants.js";
import { MAX_TOKEN_TTL_SECONDS } from "./claims.js";
import { narrowCapabilities, signAgentToken } from "./issue.js";
import type { KeySet } from "./signing-keys.js";

export const tokenRequestBody = z.strictObject({
  grant: z.string().min(1).max(200),
  ttlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_SECONDS).optional(),
  methods: z.array(z.enum(HTTP_METHODS)).min(1).max(HTTP_METHODS.length).optional(),
  paths: z.array(pathPattern).min(1).max(100).optional(),
});
export type TokenRequestBody = z.infer<typeof tokenRequestBody>;

export type TokenResponse = {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  jti: string;
};

export class Tokens {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly grants: Grants,
    private readonly keys: () => KeySet,
    private readonly claims: { issuer: string; audience: string },
  ) {}

  /** Issues a token for a subset of one grant, recording it and its audit event together. */
  async issue(agent: Agent, body: TokenRequestBody, requestId: string): Promise<TokenResponse> {
    const actor = `agent:${agent.id}`;
    const refuse = async (err: KeywardError, grantId?: string): Promise<never> => {
      await appendAudit(this.prisma, {
        kind: "token.refused",
        actor,
        requestId,
        agentId: agent.id,
        grantId,
        decision: "deny",
        reason: err.extra.reason ?? err.message,
        details: { grant: body.grant },
      });
      throw err;
    };

    const grant = await this.grants.findByIdOrName(body.grant);
    if (!grant) return refuse(notFound(`grant ${body.grant}`));
    if (!grant.agents.includes(agent.id)) return refuse(forbidden("the agent is not in this grant"), grant.id);
    const narrowed = narrowCapabilities(grant, body);
    if (!narrowed.ok) return refuse(forbidden(narrowed.reason, "widening_refused"), grant.id);

    const signed = await signAgentToken(
      this.keys(),
      { ...this.claims, agentId: agent.id, clientId: agent.clientId, grantId: grant.id, upstream: grant.upstream },
      narrowed.capabilities,
    );
    await this.prisma.$transaction(async (tx) => {
      await tx.issuedToken.create({
        data: {
          jti: signed.jti,
          agentId: agent.id,
          grantId: grant.id,
          upstream: grant.upstream,
          methods: narrowed.capabilities.methods,
          paths: narrowed.capabilities.paths,
          issuedAt: signed.issuedAt,
          expiresAt: signed.expiresAt,
        },
      });
      await appendAudit(tx, {
        kind: "token.issued",
        actor,
        requestId,
        agentId: agent.id,
        jti: signed.jti,
        grantId: grant.id,
        upstream: grant.upstream,
        decision: "allow",
        details: { ...narrowed.capabilities, expiresAt: signed.expiresAt.toISOString() },
      });
    });
    return {
      access_token: signed.token,
      token_type: "Bearer",
      expires_in: narrowed.capabilities.ttlSeconds,
      scope: signed.scope,
      jti: signed.jti,
    };
  }
}
