import { useState } from "preact/hooks";
import type { LiveToken, RevocationTarget } from "../api";
import { useConfirm } from "../components/confirm-dialog";
import { Empty, ErrorMessage } from "../components/notice";
import { useConsole } from "../context";
import { shortId, timeLeft } from "../format";
import { useLoad, useNow } from "../hooks";

const REFRESH_MS = 5_000;

const nameOf = (x: { id: string; name: string | null }) => x.name ?? shortId(x.id);

/** Live tokens, with Revoke per token and for all tokens of an agent or a grant. */
export function TokensView() {
  const { api, announce } = useConsole();
  const tokens = useLoad(() => api.liveTokens(), [api], REFRESH_MS);
  const [dialog, ask] = useConfirm();
  const [error, setError] = useState<Error>();
  const now = useNow();

  const revoke = async (target: RevocationTarget, what: string, consequence: string) => {
    const reason = await ask({ title: `Revoke ${what}?`, message: consequence, confirmLabel: "Revoke", danger: true, reasonLabel: "Reason (recorded in the audit log)" });
    if (reason === null) return;
    try {
      await api.revoke(target, reason || "revoked from the console");
      setError(undefined);
      announce(`Revoked ${what}.`);
      await tokens.reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  const list = tokens.data ?? [];
  return (
    <>
      <p class="lede">
        Tokens that would be accepted now. Revoking takes effect on the agent's very next call. The list refreshes every {REFRESH_MS / 1000} s.
      </p>
      <ErrorMessage error={error ?? tokens.error} />
      <BulkRevoke tokens={list} onRevoke={revoke} />
      {tokens.loading ? (
        <p class="loading">Loading…</p>
      ) : list.length === 0 ? (
        <Empty>No live tokens.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Live tokens, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Grant</th>
                <th scope="col">Upstream</th>
                <th scope="col">Environment</th>
                <th scope="col">Expires in</th>
                <th scope="col" class="number">Calls</th>
                <th scope="col">Token</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.map((token) => (
                <TokenRow key={token.jti} token={token} now={now} onRevoke={revoke} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {dialog}
    </>
  );
}

type Revoke = (target: RevocationTarget, what: string, consequence: string) => Promise<void>;

function TokenRow({ token, now, onRevoke }: { token: LiveToken; now: number; onRevoke: Revoke }) {
  const agent = nameOf(token.agent);
  return (
    <tr>
      <th scope="row">{agent}</th>
      <td>{nameOf(token.grant)}</td>
      <td>{token.upstream}</td>
      <td>{token.environment ?? "—"}</td>
      <td class="mono">{timeLeft(token.expiresAt, now)}</td>
      <td class="number">
        {token.calls.allowed + token.calls.denied}
        {token.calls.denied > 0 && <span class="muted"> ({token.calls.denied} denied)</span>}
      </td>
      <td class="mono" title={token.jti}>
        {shortId(token.jti)}
        {token.parentJti && <span class="tag">exchanged</span>}
      </td>
      <td class="actions-cell">
        <button
          type="button"
          class="button danger small"
          aria-label={`Revoke token ${shortId(token.jti)} of ${agent}`}
          onClick={() => onRevoke({ jti: token.jti }, `token ${shortId(token.jti)} of ${agent}`, "The token, and any token exchanged from it, stops working at once.")}
        >
          Revoke
        </button>
      </td>
    </tr>
  );
}

/** Revoke every token of one agent or one grant (including tokens issued meanwhile, up to now). */
function BulkRevoke({ tokens, onRevoke }: { tokens: LiveToken[]; onRevoke: Revoke }) {
  if (tokens.length === 0) return null;
  const distinct = (pick: (t: LiveToken) => { id: string; name: string | null }) =>
    [...new Map(tokens.map((t) => [pick(t).id, nameOf(pick(t))])).entries()].sort((a, b) => a[1].localeCompare(b[1]));
  return (
    <section class="toolbar" aria-label="Bulk revoke">
      <BulkRevokeForm
        id="bulk-agent"
        label="All tokens of agent"
        choices={distinct((t) => t.agent)}
        onSubmit={(agentId, name) =>
          onRevoke({ agentId }, `every token of agent ${name}`, "Every token this agent holds stops working at once; it may ask for new ones.")
        }
      />
      <BulkRevokeForm
        id="bulk-grant"
        label="All tokens of grant"
        choices={distinct((t) => t.grant)}
        onSubmit={(grantId, name) => onRevoke({ grantId }, `every token of grant ${name}`, "Every token issued under this grant stops working at once.")}
      />
    </section>
  );
}

function BulkRevokeForm(props: { id: string; label: string; choices: [string, string][]; onSubmit: (id: string, name: string) => void }) {
  const [chosen, setChosen] = useState("");
  const picked = props.choices.find(([id]) => id === chosen) ?? props.choices[0]!;
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        props.onSubmit(...picked);
      }}
    >
      <label for={props.id}>{props.label}</label>
      <select id={props.id} value={picked[0]} onChange={(e) => setChosen(e.currentTarget.value)}>
        {props.choices.map(([id, name]) => (
          <option key={id} value={id}>
            {name}
          </option>
        ))}
      </select>
      <button type="submit" class="button danger">
        Revoke all
      </button>
    </form>
  );
}
