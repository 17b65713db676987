import type { PrismaClient } from "@prisma/client";
import { z } from "zod";
import { badRequest, notFound } from "../http/errors.js";
import { parseProxyTarget } from "../proxy/target.js";
import { loadDecisionContext, type PolicyLookups } from "./context.js";
import { bodyNeeded, decide, type TokenApproval, type TokenCapabilities } from "./decide.js";
import { normalisePath } from "./paths.js";

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

export type SimulateDeps = PolicyLookups & { prisma: PrismaClient; inspectMaxBytes: number };

type Subject = { token: TokenCapabilities; jtis: string[]; approval: TokenApproval | null | undefined; expired: boolean };

// The decision only: a simulation neither checks the token's signature or revocation nor takes budget units.
const SCOPE = "policy only: revocation and budgets are not evaluated, nothing is forwarded";

/** Would this token or grant allow this call, and by which rule? decide() on the same inputs the proxy uses. */
export async function simulate(deps: SimulateDeps, input: z.infer<typeof simulateBody>) {
  const { request } = input;
  const target = parseProxyTarget(request.url);
  if (!target) throw badRequest("invalid_url", "request.url must be /proxy/<upstream>/<path>[?query]");
  const upstream = await deps.prisma.upstream.findUnique({ where: { name: target.upstream } });
  if (!upstream) throw notFound(`upstream ${target.upstream}`);
  const subject = input.jti !== undefined ? await tokenSubject(deps.prisma, input.jti) : await grantSubject(deps, input.grant!, input.approved);
  const context = await loadDecisionContext(deps, { grantId: subject.token.grantId, jtis: subject.jtis }, upstream);
  const about = { upstream: upstream.name, environment: upstream.environment, scope: SCOPE };

  const path = normalisePath(target.rawPath);
  if (!path.ok) return { ...about, allow: false, code: "invalid_path", reason: path.reason };
  if (subject.expired) return { ...about, allow: false, code: "token_expired", reason: "the token has expired" };
  const body = Buffer.from(request.body ?? "", "utf8");
  const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name.toLowerCase(), value]));
  if (context.grant && bodyNeeded(subject.token, context.grant, context.target, request.method, headers) && body.length > deps.inspectMaxBytes) {
    return { ...about, allow: false, code: "payload_too_large", reason: `request body exceeds ${deps.inspectMaxBytes} bytes` };
  }
  const decision = decide({ ...subject.token, approval: subject.approval === undefined ? context.approval : subject.approval }, context.grant, {
    upstream: target.upstream,
    method: request.method,
    path: path.path,
    target: context.target,
    query: target.rawQuery,
    headers,
    body,
  });
  return { ...about, path: path.path.decoded, ...decision };
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
