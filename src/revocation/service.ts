import { randomUUID } from "node:crypto";
import type { Prisma, PrismaClient } from "@prisma/client";
import { appendAudit } from "../audit/audit.js";
import { notFound, unauthenticated, unavailable } from "../http/errors.js";
import type { AgentToken } from "../tokens/claims.js";
import { RevocationState, type RevocationRecord, type RevocationSelector } from "./state.js";

export type RevocationTarget =
  | { jti: string }
  | { agentId: string }
  | { grantId: string }
  | { all: true };

function selectorOf(target: RevocationTarget): { selector: RevocationSelector; value: string } {
  if ("jti" in target) return { selector: "jti", value: target.jti };
  if ("agentId" in target) return { selector: "agent", value: target.agentId };
  if ("grantId" in target) return { selector: "grant", value: target.grantId };
  return { selector: "all", value: "*" };
}

/** Writes a revocation row and its audit event in the caller's transaction. */
export async function recordRevocation(
  tx: Prisma.TransactionClient,
  target: RevocationTarget,
  meta: { actor: string; reason?: string; requestId?: string },
): Promise<RevocationRecord & { id: string }> {
  const { selector, value } = selectorOf(target);
  let expiresAt: Date | null = null;
  if (selector === "jti") {
    const token = await tx.issuedToken.findUnique({ where: { jti: value }, select: { expiresAt: true } });
    if (!token) throw notFound("token");
    expiresAt = token.expiresAt;
  }
  const row = await tx.revocation.create({
    data: { id: randomUUID(), selector, value, reason: meta.reason, actor: meta.actor, expiresAt },
  });
  await appendAudit(tx, {
    kind: "revocation.created",
    actor: meta.actor,
    requestId: meta.requestId,
    reason: meta.reason,
    details: { revocationId: row.id, selector, value },
    ...(selector === "jti" && { jti: value }),
    ...(selector === "agent" && { agentId: value }),
    ...(selector === "grant" && { grantId: value }),
  });
  return { id: row.id, selector, value, revokedAt: row.createdAt };
}

/**
 * The in-memory revocation state of this broker: loaded at start, updated at once by revocations made
 * here, and fully reloaded every `resyncMs` to pick up other replicas' revocations. If it has not been
 * reloaded within `maxStalenessMs`, every check fails closed with 503.
 */
export class RevocationService {
  #state = new RevocationState();
  #syncedAt = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly options: { resyncMs: number; maxStalenessMs: number; now?: () => number },
  ) {}

  #now(): number {
    return this.options.now?.() ?? Date.now();
  }

  async sync(): Promise<void> {
    const startedAt = this.#now();
    const rows = await this.prisma.revocation.findMany({
      where: { OR: [{ expiresAt: null }, { expiresAt: { gt: new Date(startedAt) } }] },
      select: { selector: true, value: true, createdAt: true },
    });
    this.#state = RevocationState.from(
      rows.map((r) => ({ selector: r.selector as RevocationSelector, value: r.value, revokedAt: r.createdAt })),
    );
    this.#syncedAt = startedAt;
  }

  start(onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => this.sync().catch(onError), this.options.resyncMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Applies a revocation this broker just committed, without waiting for the next resync. */
  applyCommitted(record: RevocationRecord): void {
    this.#state.add(record);
  }

  /** Throws 401 for a revoked token, 503 when the state is too old to trust. */
  assertNotRevoked(token: AgentToken): void {
    if (this.#now() - this.#syncedAt > this.options.maxStalenessMs) {
      throw unavailable("revocation_state_stale", "revocation state is not current; refusing to forward");
    }
    const reason = this.#state.reasonRevoked(token);
    if (reason) throw unauthenticated("token_revoked", reason);
  }
}
