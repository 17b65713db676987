import { randomUUID } from "node:crypto";
import type { Prisma, PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { badRequest, conflict, notFound } from "../http/errors.js";
import { displayName, slug } from "../http/schemas.js";
import { HTTP_METHODS, type DenyRule, type GrantPolicy, type HttpMethod } from "../policy/decide.js";
import { isValidPathPattern } from "../policy/paths.js";
import { recordRevocation, type RevocationService } from "../revocation/service.js";
import { MAX_TOKEN_TTL_SECONDS } from "../tokens/claims.js";

export const pathPattern = z
  .string()
  .refine(isValidPathPattern, "a path pattern: /literal, * (one segment), {name} (one segment), ** (any depth)");
const methods = z.array(z.enum(HTTP_METHODS)).min(1).max(HTTP_METHODS.length);
const denyRule = z
  .strictObject({ method: z.enum(HTTP_METHODS).optional(), path: pathPattern.optional() })
  .refine((r) => r.method !== undefined || r.path !== undefined, "a deny rule needs a method, a path, or both");

const grantFields = {
  name: displayName,
  agents: z.array(z.string().min(1).max(100)).max(1000),
  upstream: slug,
  methods,
  paths: z.array(pathPattern).min(1).max(100),
  deny: z.array(denyRule).max(100).default([]),
  maxTtlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_SECONDS).default(900),
};
export const createGrantBody = z.strictObject(grantFields);
export const updateGrantBody = z
  .strictObject({
    name: grantFields.name.optional(),
    agents: grantFields.agents.optional(),
    upstream: grantFields.upstream.optional(),
    methods: grantFields.methods.optional(),
    paths: grantFields.paths.optional(),
    deny: z.array(denyRule).max(100).optional(),
    maxTtlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_SECONDS).optional(),
  })
  .refine((b) => Object.keys(b).length > 0, "nothing to update");

const withRelations = { upstream: { select: { name: true } }, agents: { select: { agentId: true } } } as const;
type GrantRow = Prisma.GrantGetPayload<{ include: typeof withRelations }>;

export function grantView(g: GrantRow) {
  return {
    id: g.id,
    name: g.name,
    upstream: g.upstream.name,
    agents: g.agents.map((a) => a.agentId),
    methods: g.methods as HttpMethod[],
    paths: g.paths,
    deny: g.deny as DenyRule[],
    maxTtlSeconds: g.maxTtlSeconds,
    createdAt: g.createdAt,
    updatedAt: g.updatedAt,
  };
}
export type GrantView = ReturnType<typeof grantView>;

export const toPolicy = (g: GrantView): GrantPolicy => ({
  id: g.id,
  upstream: g.upstream,
  methods: g.methods,
  paths: g.paths,
  deny: g.deny,
  agentIds: g.agents,
});

type Actor = { actor: string; requestId: string };
type Tx = Prisma.TransactionClient;

export class Grants {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly revocations: RevocationService,
  ) {}

  async create(input: z.infer<typeof createGrantBody>, meta: Actor) {
    return this.prisma.$transaction(async (tx) => {
      if (await tx.grant.findUnique({ where: { name: input.name } })) throw conflict(`grant ${input.name} exists`);
      const upstreamId = await this.#upstreamId(tx, input.upstream);
      const agentIds = await this.#existingAgents(tx, input.agents);
      const row = await tx.grant.create({
        data: {
          id: randomUUID(),
          name: input.name,
          upstreamId,
          methods: [...new Set(input.methods)],
          paths: input.paths,
          deny: input.deny,
          maxTtlSeconds: input.maxTtlSeconds,
          agents: { create: agentIds.map((agentId) => ({ agentId })) },
        },
        include: withRelations,
      });
      const view = grantView(row);
      await this.#audit(tx, meta, "grant.create", view);
      return view;
    });
  }

  async list() {
    return (await this.prisma.grant.findMany({ include: withRelations, orderBy: { name: "asc" } })).map(grantView);
  }

  async get(id: string) {
    const row = await this.prisma.grant.findUnique({ where: { id }, include: withRelations });
    if (!row) throw notFound("grant");
    return grantView(row);
  }

  /** By id, or by name (what agents use when asking for a token). */
  async findByIdOrName(ref: string): Promise<GrantView | null> {
    const row = await this.prisma.grant.findFirst({ where: { OR: [{ id: ref }, { name: ref }] }, include: withRelations });
    return row ? grantView(row) : null;
  }

  /** The grant as stored now, for the proxy's decision; null if it was deleted. */
  async policyFor(id: string): Promise<GrantPolicy | null> {
    const row = await this.prisma.grant.findUnique({ where: { id }, include: withRelations });
    return row ? toPolicy(grantView(row)) : null;
  }

  async update(id: string, input: z.infer<typeof updateGrantBody>, meta: Actor) {
    return this.prisma.$transaction(async (tx) => {
      if (!(await tx.grant.findUnique({ where: { id } }))) throw notFound("grant");
      if (input.name && (await tx.grant.findFirst({ where: { name: input.name, NOT: { id } } }))) {
        throw conflict(`grant ${input.name} exists`);
      }
      const upstreamId = input.upstream ? await this.#upstreamId(tx, input.upstream) : undefined;
      if (input.agents) {
        const agentIds = await this.#existingAgents(tx, input.agents);
        await tx.grantAgent.deleteMany({ where: { grantId: id } });
        await tx.grantAgent.createMany({ data: agentIds.map((agentId) => ({ grantId: id, agentId })) });
      }
      const row = await tx.grant.update({
        where: { id },
        data: {
          name: input.name,
          upstreamId,
          methods: input.methods ? [...new Set(input.methods)] : undefined,
          paths: input.paths,
          deny: input.deny,
          maxTtlSeconds: input.maxTtlSeconds,
        },
        include: withRelations,
      });
      const view = grantView(row);
      await this.#audit(tx, meta, "grant.update", view);
      return view;
    });
  }

  /** Deleting a grant also revokes every token issued under it. */
  async remove(id: string, meta: Actor) {
    const revocation = await this.prisma.$transaction(async (tx) => {
      const row = await tx.grant.findUnique({ where: { id }, include: withRelations });
      if (!row) throw notFound("grant");
      await tx.grant.delete({ where: { id } });
      await this.#audit(tx, meta, "grant.delete", grantView(row));
      return recordRevocation(tx, { grantId: id }, { ...meta, reason: "grant deleted" });
    });
    this.revocations.applyCommitted(revocation);
  }

  async #upstreamId(tx: Tx, name: string): Promise<string> {
    const upstream = await tx.upstream.findUnique({ where: { name }, select: { id: true } });
    if (!upstream) throw badRequest("unknown_reference", `unknown upstream ${name}`, { upstream: name });
    return upstream.id;
  }

  async #existingAgents(tx: Tx, ids: string[]): Promise<string[]> {
    const unique = [...new Set(ids)];
    const found = await tx.agent.findMany({ where: { id: { in: unique } }, select: { id: true } });
    const missing = unique.filter((id) => !found.some((a) => a.id === id));
    if (missing.length > 0) throw badRequest("unknown_reference", "unknown agent id(s)", { agents: missing });
    return unique;
  }

  async #audit(tx: Tx, meta: Actor, action: string, grant: GrantView) {
    await appendAudit(tx, {
      kind: "admin.change",
      actor: meta.actor,
      requestId: meta.requestId,
      grantId: grant.id,
      upstream: grant.upstream,
      details: { action, ...grant, createdAt: undefined, updatedAt: undefined },
    });
  }
}
