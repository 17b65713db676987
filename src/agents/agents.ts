import { randomUUID } from "node:crypto";
import type { Agent, PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { badRequest, conflict, notFound } from "../http/errors.js";
import { displayName } from "../http/schemas.js";
import type { ChangeFeed } from "../change-feed/feed.js";
import { RowCache } from "../change-feed/row-cache.js";
import { recordRevocation, type RevocationService } from "../revocation/service.js";
import { LruMap } from "../util/lru.js";
import { unusableKeys, type agentJwksBody, type AgentJwk } from "./client-keys.js";
import { hashClientSecret, isClientId, newClientCredentials, newClientSecret, verifyClientSecret } from "./client-secret.js";
import { VerifiedSecrets } from "./verified-secrets.js";

export const createAgentBody = z.strictObject({
  name: displayName,
  description: z.string().max(2000).optional(),
});

export const rotateSecretBody = z.strictObject({
  /** How long the old secret keeps working; KEYWARD_CLIENT_SECRET_OVERLAP_SECONDS when absent, 0 to end it now. */
  overlapSeconds: z.number().int().min(0).max(30 * 86_400).optional(),
});

export const agentView = (a: Agent) => ({
  id: a.id,
  name: a.name,
  description: a.description,
  clientId: a.clientId,
  previousSecretExpiresAt: a.previousSecretHash ? a.previousSecretExpiresAt : null,
  jwks: { keys: (a.jwks as AgentJwk[] | null) ?? [] },
  createdAt: a.createdAt,
});

type Actor = { actor: string; requestId: string };

/**
 * Whoever is shown the agent's secret or sets its keys can act as the agent from then on, so may not approve
 * its token requests (src/approvals). Kept on the agent, not read from the audit log, which retention prunes.
 */
const holdersWith = (agent: Agent, actor: string) => (agent.credentialHolders.includes(actor) ? undefined : { push: actor });

/** Agents held in memory at most (the least recently used goes first). */
const MAX_CACHED_AGENTS = 10_000;
/** Agent names kept in memory at most (the least recently used go first). */
const MAX_REMEMBERED_NAMES = 10_000;

export class Agents {
  /** Successful secret verifications, for 5 minutes: scrypt once per agent and period, not per token. */
  readonly #verified = new VerifiedSecrets({ ttlMs: 300_000, maxEntries: 10_000 });
  /**
   * Names by agent id, for audit events. An agent is never renamed (and a deleted one's id is never
   * reused), so a name once read stays true: no invalidation needed.
   */
  readonly #names = new LruMap<string, string>(MAX_REMEMBERED_NAMES);

  /** Agents by clientId, kept current by the change channel (migration 0014): token requests read none. */
  readonly #byClientId: RowCache<Agent | null>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly changes: Pick<ChangeFeed, "isCurrent" | "follow" | "committedHere" | "committedEverywhere">,
    private readonly revocations: RevocationService,
  ) {
    this.#byClientId = new RowCache(changes, {
      table: "Agent",
      maxEntries: MAX_CACHED_AGENTS,
      read: (clientId) => this.prisma.agent.findUnique({ where: { clientId } }),
      readMany: async (clientIds) => {
        const rows = await this.prisma.agent.findMany({ where: { clientId: { in: clientIds } } });
        return new Map(rows.map((row) => [row.clientId, row]));
      },
      missing: null,
    });
  }

  /** This replica sees its own change at once, not when the channel brings it back. */
  #changed(row: Agent): void {
    this.changes.committedHere({ table: "Agent", key: row.clientId });
  }

  /** A change that takes something away (a secret, a key): answered once every replica has applied it. */
  #changedEverywhere(row: Agent): Promise<void> {
    return this.changes.committedEverywhere({ table: "Agent", key: row.clientId });
  }

  /** Returns the client secret this once; only its scrypt hash is stored. */
  async create(input: z.infer<typeof createAgentBody>, meta: Actor) {
    const { clientId, clientSecret } = newClientCredentials();
    const secretHash = await hashClientSecret(clientSecret);
    const row = await this.prisma.$transaction(async (tx) => {
      if (await tx.agent.findUnique({ where: { name: input.name } })) throw conflict(`agent ${input.name} exists`);
      const created = await tx.agent.create({
        data: { id: randomUUID(), name: input.name, description: input.description, clientId, secretHash, credentialHolders: [meta.actor] },
      });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        agentId: created.id,
        details: { action: "agent.create", name: created.name, clientId },
        names: { agent: created.name },
      });
      return created;
    });
    this.#changed(row);
    return { ...agentView(row), clientSecret };
  }

  async list() {
    return (await this.prisma.agent.findMany({ orderBy: { createdAt: "asc" } })).map(agentView);
  }

  async get(id: string) {
    const row = await this.prisma.agent.findUnique({ where: { id } });
    if (!row) throw notFound("agent");
    return agentView(row);
  }

  /** Deleting an agent also revokes every token it holds. */
  async remove(id: string, meta: Actor) {
    const revocation = await this.prisma.$transaction(async (tx) => {
      const row = await tx.agent.findUnique({ where: { id } });
      if (!row) throw notFound("agent");
      await tx.agent.delete({ where: { id } });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        agentId: id,
        details: { action: "agent.delete", name: row.name },
        names: { agent: row.name },
      });
      return { row, revocation: await recordRevocation(tx, { agentId: id }, { ...meta, reason: "agent deleted", names: { agent: row.name } }) };
    });
    this.#changed(revocation.row);
    await this.revocations.committed(revocation.revocation);
  }

  /**
   * Issues a new client secret, returned this once. The old one keeps working for `overlapSeconds`
   * (so running agents can switch without an outage); a secret older than that stops at once.
   */
  async rotateSecret(id: string, overlapSeconds: number, meta: Actor, now = new Date()) {
    const clientSecret = newClientSecret();
    const secretHash = await hashClientSecret(clientSecret);
    const row = await this.prisma.$transaction(async (tx) => {
      const existing = await tx.agent.findUnique({ where: { id } });
      if (!existing) throw notFound("agent");
      const previousSecretExpiresAt = new Date(now.getTime() + overlapSeconds * 1000);
      const updated = await tx.agent.update({
        where: { id },
        data: { secretHash, previousSecretHash: existing.secretHash, previousSecretExpiresAt, credentialHolders: holdersWith(existing, meta.actor) },
      });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        agentId: id,
        details: { action: "agent.rotate_secret", previousSecretExpiresAt: previousSecretExpiresAt.toISOString() },
        names: { agent: existing.name },
      });
      return updated;
    });
    await this.#changedEverywhere(row);
    return { ...agentView(row), clientSecret };
  }

  /** Replaces the public keys the agent signs private_key_jwt assertions with (none: an empty set). */
  async setJwks(id: string, jwks: z.infer<typeof agentJwksBody>, meta: Actor) {
    const unusable = await unusableKeys(jwks.keys);
    if (unusable.length > 0) throw badRequest("invalid_key", "not a usable public key for its alg", { kids: unusable });
    const row = await this.prisma.$transaction(async (tx) => {
      const existing = await tx.agent.findUnique({ where: { id } });
      if (!existing) throw notFound("agent");
      const updated = await tx.agent.update({ where: { id }, data: { jwks: jwks.keys, credentialHolders: holdersWith(existing, meta.actor) } });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        agentId: id,
        details: { action: "agent.set_jwks", kids: jwks.keys.map((k) => k.kid) },
        names: { agent: existing.name },
      });
      return updated;
    });
    await this.#changedEverywhere(row);
    return agentView(row);
  }

  /** The agent's name, or null if there is no such agent (any more). */
  async nameOf(id: string): Promise<string | null> {
    const remembered = this.#names.get(id);
    if (remembered !== undefined) return remembered;
    const row = await this.prisma.agent.findUnique({ where: { id }, select: { name: true } });
    if (row) this.#names.set(id, row.name);
    return row?.name ?? null;
  }

  /** The agent a client id names; text that is no client id (isClientId) names none and is not looked up. */
  findByClientId(clientId: string): Promise<Agent | null> {
    return isClientId(clientId) ? this.#byClientId.get(clientId) : Promise.resolve(null);
  }

  /**
   * The agent these client credentials belong to, or null. The previous secret counts until its overlap
   * ends. A refusal costs two scrypts whatever the reason, so timing does not tell which part was wrong;
   * a success is remembered for a while (see VerifiedSecrets), checked against the row read here.
   */
  async authenticate(clientId: string, clientSecret: string, now = new Date()): Promise<Agent | null> {
    const row = await this.findByClientId(clientId);
    if (row && this.#verified.accepted(clientId, clientSecret, row, now)) return row;
    if (await verifyClientSecret(clientSecret, row?.secretHash)) {
      this.#verified.remember(clientId, clientSecret, row!.secretHash, now);
      return row;
    }
    const previousLive = row?.previousSecretExpiresAt && row.previousSecretExpiresAt > now;
    if (!(await verifyClientSecret(clientSecret, previousLive ? (row.previousSecretHash ?? undefined) : undefined))) return null;
    this.#verified.remember(clientId, clientSecret, row!.previousSecretHash!, now);
    return row;
  }
}
