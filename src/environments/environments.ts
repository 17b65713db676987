import type { PrismaClient } from "@prisma/client";
import { z } from "zod";
import { appendAudit } from "../audit/audit.js";
import type { ChangeFeed } from "../change-feed/feed.js";
import { RowCache } from "../change-feed/row-cache.js";

export const environmentSettingsBody = z.strictObject({ requiresApproval: z.boolean() });

/**
 * Environments are named by upstreams (`production`, `staging`, ...); this is what an admin sets for
 * one. A grant names the environments it covers (src/grants); an environment that requires approval
 * makes every token for its upstreams wait for a human (src/approvals).
 */
export class Environments {
  /** requiresApproval by environment name, kept current by the change feed (migration 0005). */
  readonly #requiresApproval: RowCache<boolean>;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly changes: Pick<ChangeFeed, "isCurrent" | "follow" | "committedHere" | "committedEverywhere">,
  ) {
    this.#requiresApproval = new RowCache(changes, {
      table: "Environment",
      // Environments are named by upstreams, whose own cache is as large.
      maxEntries: 10_000,
      read: async (name) => (await this.prisma.environment.findUnique({ where: { name } }))?.requiresApproval ?? false,
      readMany: async (names) => {
        const rows = await this.prisma.environment.findMany({ where: { name: { in: names } } });
        return new Map(rows.map((row) => [row.name, row.requiresApproval]));
      },
      missing: false,
    });
  }

  /** Read on every proxied call: from memory, dropped at once on this replica and every other when set. */
  requiresApproval(name: string): Promise<boolean> {
    return this.#requiresApproval.get(name);
  }

  /** Every environment an upstream names or an admin configured, with its upstreams. */
  async list() {
    const [settings, upstreams] = await Promise.all([
      this.prisma.environment.findMany(),
      this.prisma.upstream.findMany({ select: { name: true, environment: true }, orderBy: { name: "asc" } }),
    ]);
    const names = [...new Set([...settings.map((s) => s.name), ...upstreams.map((u) => u.environment)])].sort();
    return names.map((name) => ({
      name,
      requiresApproval: settings.find((s) => s.name === name)?.requiresApproval ?? false,
      upstreams: upstreams.filter((u) => u.environment === name).map((u) => u.name),
    }));
  }

  async set(name: string, input: z.infer<typeof environmentSettingsBody>, meta: { actor: string; requestId: string }) {
    const settings = await this.prisma.$transaction(async (tx) => {
      const row = await tx.environment.upsert({ where: { name }, create: { name, ...input }, update: input });
      await appendAudit(tx, {
        kind: "admin.change",
        actor: meta.actor,
        requestId: meta.requestId,
        environment: name,
        details: { action: "environment.update", name, requiresApproval: row.requiresApproval },
      });
      return { name: row.name, requiresApproval: row.requiresApproval };
    });
    await this.changes.committedEverywhere({ table: "Environment", key: name });
    return settings;
  }
}
