import { randomUUID } from "node:crypto";
import type { Agent, PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import { conflict, notFound } from "../http/errors.js";
import { displayName } from "../http/schemas.js";
import { recordRevocation, type RevocationService } from "../revocation/service.js";
import { hashClientSecret, newClientCredentials, verifyClientSecret } from "./client-secret.js";

export const createAgentBody = z.strictObject({
  name: displayName,
  description: z.string().max(2000).optional(),
});

export const agentView = (a: Agent) => ({
  id: a.id,
  name: a.name,
  description: a.description,
  clientId: a.clientId,
  createdAt: a.createdAt,
});

type Actor = { actor: string; requestId: string };

export class Agents {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly revocations: RevocationService,
  ) {}

  /** Returns the client secret this once; only its scrypt hash is stored. */
  async create(input: z.infer<typeof createAgentBody>, meta: Actor) {
    const { clientId, clientSecret } = newClientCredentials();
    const secretHash = await hashClientSecret(clientSecret);
    const row = await this.prisma.$transaction(async (tx) => {
      if (await tx.agent.findUnique({ where: { name: input.name } })) throw conflict(`agent ${input.name} exists`);
      const created = await tx.agent.create({
        data: { id: randomUUID(), name: input.name, description: input.description, clientId, secretHash },
      });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        agentId: created.id,
        details: { action: "agent.create", name: created.name, clientId },
      });
      return created;
    });
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
      });
      return recordRevocation(tx, { agentId: id }, { ...meta, reason: "agent deleted" });
    });
    this.revocations.applyCommitted(revocation);
  }

  /** The agent these client credentials belong to, or null; costs one scrypt either way. */
  async authenticate(clientId: string, clientSecret: string): Promise<Agent | null> {
    const row = await this.prisma.agent.findUnique({ where: { clientId } });
    return (await verifyClientSecret(clientSecret, row?.secretHash)) ? row : null;
  }
}
