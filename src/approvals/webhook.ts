import type { PrismaClient } from "@prisma/client";
import { appendAudit } from "../audit/audit.js";
import { visibleStrings } from "../audit/event-text.js";
import type { ApprovalNotifier, ApprovalView } from "./approvals.js";

const TIMEOUT_MS = 5_000;

/**
 * Where announcements go. `authorization` (KEYWARD_APPROVAL_WEBHOOK_AUTHORIZATION) is sent as the
 * `Authorization` header: without it a receiver cannot tell Keyward's announcements from a forged one
 * showing a real approvalId next to harmless-looking details.
 */
export type ApprovalWebhookTarget = { url: string; authorization: string | undefined };

/**
 * Posts each new approval request to KEYWARD_APPROVAL_WEBHOOK_URL (chat-ops), in the background: the
 * agent's 202 does not wait for it. The outcome is audited (`approval.notified`). The payload carries
 * ids, names and what is asked for; never a secret or a token.
 */
export class ApprovalWebhook implements ApprovalNotifier {
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly target: ApprovalWebhookTarget,
    private readonly prisma: PrismaClient,
    private readonly onError: (err: unknown) => void,
  ) {}

  notify(approval: ApprovalView, names: { agent: string; grant: string }): void {
    const delivery = this.#deliver(approval, names)
      .catch(this.onError)
      .finally(() => this.#inFlight.delete(delivery));
    this.#inFlight.add(delivery);
  }

  /** Waits for deliveries under way (on shutdown, before the database closes). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }

  async #deliver(approval: ApprovalView, names: { agent: string; grant: string }): Promise<void> {
    const payload = {
      event: "approval.requested",
      approvalId: approval.approvalId,
      agent: { id: approval.agentId, name: names.agent },
      grant: { id: approval.grantId, name: names.grant },
      upstream: approval.upstream,
      environment: approval.environment,
      reasons: approval.reasons,
      capabilities: approval.capabilities,
      protectedOperations: approval.protectedOperations,
      expiresAt: approval.expiresAt.toISOString(),
      approve: `POST /v1/approvals/${approval.approvalId}/approve`,
      deny: `POST /v1/approvals/${approval.approvalId}/deny`,
    };
    let status: number | undefined;
    let failure: string | undefined;
    try {
      const { url, authorization } = this.target;
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...(authorization && { authorization }) },
        // What the agent asked for (its narrowed paths) is shown to a human in chat: with its invisible and
        // bidi characters visible, as the console and `keyward audit` show them.
        body: JSON.stringify(visibleStrings(payload)),
        redirect: "manual",
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      status = response.status;
      await response.body?.cancel();
      if (!response.ok) failure = `webhook answered ${status}`;
    } catch {
      failure = "webhook unreachable or too slow";
    }
    await appendAudit(this.prisma, {
      kind: "approval.notified",
      actor: "keyward",
      agentId: approval.agentId,
      grantId: approval.grantId,
      upstream: approval.upstream,
      environment: approval.environment,
      decision: failure ? "deny" : "allow",
      reason: failure,
      status,
      details: { approvalId: approval.approvalId },
      names,
    });
  }
}
