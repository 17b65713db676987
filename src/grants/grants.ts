import { randomUUID } from "node:crypto";
import type { Prisma, PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { badRequest, conflict, notFound } from "../http/errors.js";
import { displayName, slug } from "../http/schemas.js";
import { HTTP_METHODS, type GrantPolicy, type HttpMethod, type HttpRule } from "../policy/decide.js";
import { grantPolicyFields, httpRule, pathPattern, type Protocol } from "../policy/rules.js";
import type { ChangeFeed } from "../change-feed/feed.js";
import { RowCache } from "../change-feed/row-cache.js";
import { deepFreeze } from "../util/freeze.js";
import { recordRevocation, type RevocationService } from "../revocation/service.js";
import { MAX_TOKEN_TTL_SECONDS } from "../tokens/claims.js";
import { compileGrantRedaction, redactRule, type RedactRule } from "../redaction/rules.js";
import { PRESET_REDACTION_IDS } from "../policy/presets/index.js";
import { grantPolicyColumns, grantPolicyView, grantRedactionColumns } from "./policy-columns.js";

export { pathPattern };
const methods = z.array(z.enum(HTTP_METHODS)).min(1).max(HTTP_METHODS.length);

const grantFields = {
  name: displayName,
  agents: z.array(z.string().min(1).max(100)).max(1000),
  upstream: slug,
  methods,
  paths: z.array(pathPattern).min(1).max(100),
  deny: z.array(httpRule).max(100).default([]),
  maxTtlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_SECONDS).default(900),
  ...grantPolicyFields,
  /** Response redaction rules for secrets the upstream returns on purpose (docs/redaction.md). */
  redact: z.array(redactRule).max(100).optional(),
  /** Preset response redactions to turn off (`railway.variables`): the calls they would have applied to are audited so. */
  redactOptOut: z.array(z.enum(PRESET_REDACTION_IDS)).max(20).optional(),
};
export const createGrantBody = z.strictObject(grantFields);
export const updateGrantBody = z
  .strictObject({
    name: grantFields.name.optional(),
    agents: grantFields.agents.optional(),
    upstream: grantFields.upstream.optional(),
    methods: grantFields.methods.optional(),
    paths: grantFields.paths.optional(),
    deny: z.array(httpRule).max(100).optional(),
    maxTtlSeconds: z.number().int().min(1).max(MAX_TOKEN_TTL_SECONDS).optional(),
    ...grantPolicyFields,
    redact: grantFields.redact,
    redactOptOut: grantFields.redactOptOut,
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
    deny: g.deny as HttpRule[],
    maxTtlSeconds: g.maxTtlSeconds,
    ...grantPolicyView(g),
    redact: g.redact as RedactRule[],
    redactOptOut: g.redactOptOut,
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
  environments: g.environments,
  requiresApproval: g.requiresApproval,
  destructive: g.destructive,
  requiresApprovalFor: g.requiresApprovalFor,
  graphql: g.graphql,
  jsonrpc: g.jsonrpc,
  allowProtected: g.allowProtected,
  budgets: g.budgets,
  redact: g.redact,
  redactOptOut: g.redactOptOut,
});

type Actor = { actor: string; requestId: string };
type Tx = Prisma.TransactionClient;

/** Grants kept in memory at most (the least recently used go first), and names remembered. */
const MAX_CACHED_GRANTS = 10_000;

export class Grants {
  /**
   * Grants as stored now, by id, for the proxy and token issuance: kept current by the change
   * feed (the triggers of migration 0005 announce every Grant and GrantAgent change by grant id).
   */
  readonly #views: RowCache<GrantView | null>;
  /** The decision's view of each cached grant, derived once. */
  readonly #policies = new WeakMap<GrantView, GrantPolicy>();
  /** Which id a name was last found under: only a hint, checked against that grant's current name. */
  readonly #idsByName = new Map<string, string>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly changes: Pick<ChangeFeed, "isCurrent" | "follow" | "committedHere" | "committedEverywhere">,
    private readonly revocations: Pick<RevocationService, "committed">,
  ) {
    this.#views = new RowCache(changes, {
      table: "Grant",
      maxEntries: MAX_CACHED_GRANTS,
      read: async (id) => {
        const row = await this.prisma.grant.findUnique({ where: { id }, include: withRelations });
        return row ? grantView(row) : null;
      },
      readMany: async (ids) => {
        const rows = await this.prisma.grant.findMany({ where: { id: { in: ids } }, include: withRelations });
        return new Map(rows.map((row) => [row.id, grantView(row)]));
      },
      missing: null,
    });
  }

  async create(input: z.infer<typeof createGrantBody>, meta: Actor) {
    return this.prisma.$transaction(async (tx) => {
      if (await tx.grant.findUnique({ where: { name: input.name } })) throw conflict(`grant ${input.name} exists`);
      const upstream = await this.#upstream(tx, input.upstream);
      const agentIds = await this.#existingAgents(tx, input.agents);
      const row = await tx.grant.create({
        data: {
          id: randomUUID(),
          name: input.name,
          upstreamId: upstream.id,
          methods: [...new Set(input.methods)],
          paths: input.paths,
          deny: input.deny,
          maxTtlSeconds: input.maxTtlSeconds,
          ...grantPolicyColumns(input, null, upstream),
          ...grantRedactionColumns(input, null, upstream),
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

  /** The grant's name as stored now (from memory, like policyFor), for audit events; null if it was deleted. */
  async nameOf(id: string): Promise<string | null> {
    return (await this.#views.get(id))?.name ?? null;
  }

  /**
   * By id, or by name (what agents use when asking for a token), as stored now. A name is resolved from
   * memory only while the grant it was last found under still has it; otherwise it is read again, so a
   * renamed, deleted or newly created grant is never missed.
   */
  async findByIdOrName(ref: string): Promise<GrantView | null> {
    const byId = await this.#views.get(ref);
    if (byId) return byId;
    const remembered = this.#idsByName.get(ref);
    const hinted = remembered === undefined ? null : await this.#views.get(remembered);
    if (hinted?.name === ref) return hinted;
    const row = await this.prisma.grant.findUnique({ where: { name: ref }, include: withRelations });
    if (!row) return null;
    this.#idsByName.delete(ref);
    this.#idsByName.set(ref, row.id);
    if (this.#idsByName.size > MAX_CACHED_GRANTS) this.#idsByName.delete(this.#idsByName.keys().next().value!);
    return grantView(row);
  }

  /**
   * The grant as stored now, for the proxy's decision; null if it was deleted. From memory: an edit or a
   * deletion drops it at once on this replica and, announced by the grant's trigger, on every other.
   */
  async policyFor(id: string): Promise<GrantPolicy | null> {
    const view = await this.#views.get(id);
    if (!view) return null;
    let policy = this.#policies.get(view);
    if (!policy) {
      policy = deepFreeze(toPolicy(view));
      // Compiled here, once per loaded grant, never per call.
      compileGrantRedaction(policy);
      this.#policies.set(view, policy);
    }
    return policy;
  }

  async update(id: string, input: z.infer<typeof updateGrantBody>, meta: Actor) {
    const updated = await this.prisma.$transaction(async (tx) => {
      const existing = await tx.grant.findUnique({ where: { id }, include: withRelations });
      if (!existing) throw notFound("grant");
      if (input.name && (await tx.grant.findFirst({ where: { name: input.name, NOT: { id } } }))) {
        throw conflict(`grant ${input.name} exists`);
      }
      // The policy is checked against the upstream it will have, whether or not either changed.
      const upstream = await this.#upstream(tx, input.upstream ?? existing.upstream.name);
      if (input.agents) {
        const agentIds = await this.#existingAgents(tx, input.agents);
        await tx.grantAgent.deleteMany({ where: { grantId: id } });
        await tx.grantAgent.createMany({ data: agentIds.map((agentId) => ({ grantId: id, agentId })) });
      }
      const row = await tx.grant.update({
        where: { id },
        data: {
          name: input.name,
          upstreamId: upstream.id,
          methods: input.methods ? [...new Set(input.methods)] : undefined,
          paths: input.paths,
          deny: input.deny,
          maxTtlSeconds: input.maxTtlSeconds,
          ...grantPolicyColumns(input, grantPolicyView(existing), upstream),
          ...grantRedactionColumns(input, { redact: existing.redact as RedactRule[], redactOptOut: existing.redactOptOut }, upstream),
        },
        include: withRelations,
      });
      const view = grantView(row);
      await this.#audit(tx, meta, "grant.update", view);
      return view;
    });
    // Narrows live tokens here at once, and on every replica before the admin hears of it.
    await this.changes.committedEverywhere({ table: "Grant", key: id });
    return updated;
  }

  /** Deleting a grant also revokes every token issued under it. */
  async remove(id: string, meta: Actor) {
    const revocation = await this.prisma.$transaction(async (tx) => {
      const row = await tx.grant.findUnique({ where: { id }, include: withRelations });
      if (!row) throw notFound("grant");
      await tx.grant.delete({ where: { id } });
      await this.#audit(tx, meta, "grant.delete", grantView(row));
      return recordRevocation(tx, { grantId: id }, { ...meta, reason: "grant deleted", names: { grant: row.name } });
    });
    this.changes.committedHere({ table: "Grant", key: id });
    await this.revocations.committed(revocation);
  }

  async #upstream(tx: Tx, name: string) {
    const upstream = await tx.upstream.findUnique({
      where: { name },
      select: { id: true, environment: true, protocol: true, presets: true },
    });
    if (!upstream) throw badRequest("unknown_reference", `unknown upstream ${name}`, { upstream: name });
    return { ...upstream, protocol: upstream.protocol as Protocol };
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
      names: { grant: grant.name },
    });
  }
}
