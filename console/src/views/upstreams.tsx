import { Empty, ErrorMessage } from "../components/notice";
import { useConsole } from "../context";
import { formatDateTime, fromNow } from "../format";
import { useLoad } from "../hooks";

/** The APIs agents reach through the proxy. Secrets are write-only: only when one was last set is shown. */
export function UpstreamsView() {
  const { api } = useConsole();
  const upstreams = useLoad(() => api.upstreams(), [api]);
  const list = upstreams.data ?? [];
  return (
    <>
      <p class="lede">Keyward holds each upstream's real credential, encrypted; agents never see it, and neither does this console.</p>
      <ErrorMessage error={upstreams.error} />
      {upstreams.loading ? (
        <p class="loading">Loading…</p>
      ) : list.length === 0 ? (
        <Empty>No upstreams yet.</Empty>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Upstreams</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Base URL</th>
                <th scope="col">Environment</th>
                <th scope="col">Protocol</th>
                <th scope="col">Credential</th>
                <th scope="col">Secret</th>
                <th scope="col">Protection presets</th>
              </tr>
            </thead>
            <tbody>
              {list.map((u) => (
                <tr key={u.id}>
                  <th scope="row">{u.name}</th>
                  <td class="mono wrap">{u.baseUrl}</td>
                  <td>{u.environment}</td>
                  <td>{u.protocol}</td>
                  <td>{u.auth.type}</td>
                  <td title={formatDateTime(u.secret.updatedAt)}>
                    {u.secret.set ? `set, last rotated ${fromNow(u.secret.updatedAt)}` : "not set"}
                  </td>
                  <td>{u.presets.length === 0 ? <span class="muted">none</span> : u.presets.join(", ")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
