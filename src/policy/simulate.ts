import type { PrismaClient } from "@prisma/client";
import { z } from "zod";
import type { AuditLog } from "../audit/log.js";
import { awaitTokenRecord } from "../revocation/revoke.js";
import { badRequest, notFound } from "../http/errors.js";
import { decisionRequest, prepareCall, targetOf } from "../proxy/prepare.js";
import type { Upstreams } from "../upstreams/upstreams.js";
import { loadDecisionContext, type PolicyLookups } from "./context.js";
import { decide, type TokenApproval, type TokenCapabilities } from "./decide.js";

export const simulateBody = z
  .strictObject({
    /** A token Keyward issued, by its jti (never the token itself: it would land in request logs). */
    jti: z.string().min(1).max(100).optional(),
    /** Or a grant, by id or name: as a token with everything the grant allows, for an agent of the grant. */
    grant: z.string().min(1).max(200).optional(),
    /** Grant simulations only: as if a human had approved the token (for everything the grant names). */
    approved: z.boolean().optional(),
    request: z.strictObject({
      method: z.string().min(1).max(20),
      /** As the agent would call it: /proxy/<upstream>/<path>[?query]. */
      url: z.string().min(1).max(8192),
      headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,100}$/), z.string().max(8192)).default({}),
      body: z.string().max(10 * 1024 * 1024).optional(),
    }),
  })
  .refine((b) => (b.jti === undefined) !== (b.grant === undefined), "give exactly one of jti or grant")
  .refine((b) => b.approved === undefined || b.grant !== undefined, "approved applies to grant simulations only");

export type SimulateDeps = PolicyLookups & {
  prisma: PrismaClient;
  /** A token issued a moment ago is waited for until it is recorded (src/revocation/revoke.ts). */
  auditLog: Pick<AuditLog, "flush">;
  /** The same cache the proxy resolves upstreams from, so both see one upstream. */
  upstreams: Pick<Upstreams, "findByName">;
  inspectMaxBytes: number;
  maxBodyBytes: number;
};

type Subject = { token: TokenCapabilities; jtis: string[]; approval: TokenApproval | null | undefined; expired: boolean };

// The decision only: a simulation neither checks the token's signature or revocation nor takes budget units.
const SCOPE = "policy only: revocation and budgets are not evaluated, nothing is forwarded";

/**
 * Would this token or grant allow this call, and by which rule? The proxy's own steps on the same
 * inputs: prepareCall() (src/proxy/prepare.ts), then decide().
 */
export async function simulate(deps: SimulateDeps, input: z.infer<typeof simulateBody>) {
  const { request } = input;
  const parsed = targetOf(request.url);
  if (!parsed.ok) throw badRequest("invalid_url", "request.url must be /proxy/<upstream>/<path>[?query]");
  const { target } = parsed;
  const upstream = await deps.upstreams.findByName(target.upstream);
  if (!upstream) throw notFound(`upstream ${target.upstream}`);
  if (input.jti !== undefined) await awaitTokenRecord(deps.prisma, deps.auditLog, input.jti);
  const subject = input.jti !== undefined ? await tokenSubject(deps.prisma, input.jti) : await grantSubject(deps, input.grant!, input.approved);
  const context = await loadDecisionContext(deps, { grantId: subject.token.grantId, jtis: subject.jtis }, upstream);
  const about = { upstream: upstream.name, environment: upstream.environment, scope: SCOPE };

  if (subject.expired) return { ...about, allow: false, code: "token_expired", reason: "the token has expired" };
  const body = Buffer.from(request.body ?? "", "utf8");
  const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name.toLowerCase(), value]));
  const prepared = prepareCall({ target, method: request.method, headers, bodyLength: body.length }, { ...context, token: subject.token }, deps);
  if (!prepared.ok) return { ...about, allow: false, code: prepared.code, reason: prepared.reason };
  const decision = decide(
    { ...subject.token, approval: subject.approval === undefined ? context.approval : subject.approval },
    context.grant,
    decisionRequest(prepared, context.target, body),
  );
  return { ...about, path: prepared.path.decoded, ...decision };
}

async function tokenSubject(prisma: PrismaClient, jti: string): Promise<Subject> {
  const row = await prisma.issuedToken.findUnique({ where: { jti } });
  if (!row) throw notFound("token");
  // An exchanged token inherits its ancestors' approval: collect its chain.
  const jtis = [row.jti];
  for (let parent = row.parentJti; parent && jtis.length < 10; ) {
    jtis.push(parent);
    parent = (await prisma.issuedToken.findUnique({ where: { jti: parent }, select: { parentJti: true } }))?.parentJti ?? null;
  }
  return {
    token: { agentId: row.agentId, grantId: row.grantId, upstream: row.upstream, methods: row.methods as TokenCapabilities["methods"], paths: row.paths },
    jtis,
    approval: undefined, // as recorded
    expired: row.expiresAt <= new Date(),
  };
}

async function grantSubject(deps: SimulateDeps, ref: string, approved: boolean | undefined): Promise<Subject> {
  const grant = await deps.grants.findByIdOrName(ref);
  if (!grant) throw notFound(`grant ${ref}`);
  return {
    // A grant without agents has nobody to simulate for: decide() then says agent_not_in_grant.
    token: { agentId: grant.agents[0] ?? "", grantId: grant.id, upstream: grant.upstream, methods: grant.methods, paths: grant.paths },
    jtis: [],
    approval: approved ? { protectedOperations: grant.allowProtected } : null,
    expired: false,
  };
}
