import { useState } from "preact/hooks";
import type { Approval, ApprovalStatus } from "../api";
import { useConfirm } from "../components/confirm-dialog";
import { Empty, ErrorMessage } from "../components/notice";
import { useConsole } from "../context";
import { useNames, type Names } from "../names";
import { formatDuration, fromNow } from "../format";
import { useLoad } from "../hooks";
import { visibleText } from "../../../src/audit/event-text";

const STATUSES: ApprovalStatus[] = ["pending", "approved", "denied", "issued", "expired"];

/** Token requests held for a human: approve or deny each (never one's own: the server refuses it). */
export function ApprovalsView() {
  const { api, announce } = useConsole();
  const names = useNames();
  const [status, setStatus] = useState<ApprovalStatus>("pending");
  const approvals = useLoad(() => api.approvals(status), [api, status], 10_000);
  const [dialog, ask] = useConfirm();
  const [error, setError] = useState<Error>();

  const decide = async (approval: Approval, verdict: "approve" | "deny") => {
    const who = names.agentName(approval.agentId);
    const note = await ask({
      title: verdict === "approve" ? `Approve ${who}'s request?` : `Deny ${who}'s request?`,
      message:
        verdict === "approve"
          ? `The agent can collect one token for grant ${names.grantName(approval.grantId)} on ${approval.upstream} (${approval.environment}).`
          : "The agent is told its request was denied; it gets no token.",
      confirmLabel: verdict === "approve" ? "Approve" : "Deny",
      danger: verdict === "approve",
      reasonLabel: "Note (recorded in the audit log)",
    });
    if (note === null) return;
    try {
      await api.decideApproval(approval.approvalId, verdict, note);
      setError(undefined);
      announce(`${verdict === "approve" ? "Approved" : "Denied"} ${who}'s request.`);
      await approvals.reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  const list = approvals.data ?? [];
  return (
    <>
      <p class="lede">Token requests that need a human: for grants or environments that require approval, or protected operations.</p>
      <div class="toolbar">
        <label for="approval-status">Show</label>
        <select id="approval-status" value={status} onChange={(e) => setStatus(e.currentTarget.value as ApprovalStatus)}>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <ErrorMessage error={error ?? approvals.error} />
      {approvals.loading ? (
        <p class="loading">Loading…</p>
      ) : list.length === 0 ? (
        <Empty>No {status} requests.</Empty>
      ) : (
        <ul class="cards">
          {list.map((approval) => (
            <ApprovalCard key={approval.approvalId} approval={approval} names={names} onDecide={decide} />
          ))}
        </ul>
      )}
      {dialog}
    </>
  );
}

function ApprovalCard(props: { approval: Approval; names: Names; onDecide: (a: Approval, verdict: "approve" | "deny") => void }) {
  const { approval: a, names } = props;
  const headingId = `approval-${a.approvalId}`;
  const caps = a.capabilities;
  return (
    <li class="card">
      <h2 id={headingId}>
        {names.agentName(a.agentId)} → {names.grantName(a.grantId)}
        <span class={`tag status-${a.status}`}>{a.status}</span>
      </h2>
      <dl class="facts">
        <dt>Upstream</dt>
        <dd>
          {a.upstream} ({a.environment})
        </dd>
        <dt>Asks for</dt>
        <dd>
          {caps.methods?.join(", ") ?? "the grant's methods"} on {caps.paths ? visibleText(caps.paths.join(", ")) : "the grant's paths"}
          {caps.ttlSeconds !== undefined && `, for ${formatDuration(caps.ttlSeconds)}`}
        </dd>
        <dt>Why held</dt>
        <dd>{visibleText(a.reasons.join("; "))}</dd>
        {a.protectedOperations.length > 0 && (
          <>
            <dt>Protected operations</dt>
            <dd>{a.protectedOperations.join(", ")}</dd>
          </>
        )}
        <dt>Requested</dt>
        <dd>
          {fromNow(a.createdAt)}; expires {fromNow(a.expiresAt)}
        </dd>
        {a.decidedBy && (
          <>
            <dt>Decided by</dt>
            <dd>
              {names.actorName(a.decidedBy)}
              {a.note && <>: “{visibleText(a.note)}”</>}
            </dd>
          </>
        )}
      </dl>
      {a.status === "pending" && (
        <div class="actions">
          <button type="button" class="button primary" onClick={() => props.onDecide(a, "approve")}>
            Approve
          </button>
          <button type="button" class="button" onClick={() => props.onDecide(a, "deny")}>
            Deny
          </button>
        </div>
      )}
    </li>
  );
}
