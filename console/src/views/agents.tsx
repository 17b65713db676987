import { Empty, ErrorMessage } from "../components/notice";
import { useConsole } from "../context";
import { formatDateTime, fromNow } from "../format";
import { useLoad } from "../hooks";
import { visibleText } from "../../../src/audit/event-text";

/** Registered agents, and the grants each may use. */
export function AgentsView() {
  const { api } = useConsole();
  const data = useLoad(async () => {
    const [agents, grants] = await Promise.all([api.agents(), api.grants()]);
    return { agents, grants };
  }, [api]);
  const { agents = [], grants = [] } = data.data ?? {};
  return (
    <>
      <p class="lede">Agents authenticate with their client id and secret (shown once, when registered) or a registered key, and get short-lived tokens under their grants.</p>
      <ErrorMessage error={data.error} />
      {data.loading ? (
        <p class="loading">Loading…</p>
      ) : agents.length === 0 ? (
        <Empty>No agents yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Agents</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Client id</th>
                <th scope="col">Grants</th>
                <th scope="col">Credentials</th>
                <th scope="col">Registered</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((agent) => {
                const theirs = grants.filter((g) => g.agents.includes(agent.id));
                return (
                  <tr key={agent.id}>
                    <th scope="row">
                      {agent.name}
                      {agent.description && <div class="muted">{visibleText(agent.description)}</div>}
                    </th>
                    <td class="mono">{agent.clientId}</td>
                    <td>{theirs.length === 0 ? <span class="muted">none</span> : theirs.map((g) => g.name).join(", ")}</td>
                    <td>
                      client secret
                      {agent.previousSecretExpiresAt && <div class="muted">previous secret valid until {formatDateTime(agent.previousSecretExpiresAt)}</div>}
                      {agent.jwks.keys.length > 0 && <div class="muted">{agent.jwks.keys.length} signing key(s) (private_key_jwt)</div>}
                    </td>
                    <td title={formatDateTime(agent.createdAt)}>{fromNow(agent.createdAt)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
