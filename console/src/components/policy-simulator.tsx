import { useState } from "preact/hooks";
import { HTTP_METHODS, type Grant, type Simulation } from "../api";
import { useConsole } from "../context";
import { ErrorMessage } from "./notice";

/** "Would this request be allowed?": POST /v1/policy/simulate, the proxy's own decision, nothing forwarded. */
export function PolicySimulator({ grants }: { grants: Grant[] }) {
  const { api } = useConsole();
  const [grantId, setGrantId] = useState("");
  const [method, setMethod] = useState("GET");
  const [path, setPath] = useState("/");
  const [body, setBody] = useState("");
  const [approved, setApproved] = useState(false);
  const [result, setResult] = useState<Simulation>();
  const [error, setError] = useState<Error>();
  const grant = grants.find((g) => g.id === grantId) ?? grants[0];

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!grant) return;
    try {
      const url = `/proxy/${grant.upstream}${path.startsWith("/") ? path : `/${path}`}`;
      setResult(await api.simulate({ grant: grant.id, approved, request: { method, url, ...(body && { body }) } }));
      setError(undefined);
    } catch (err) {
      setResult(undefined);
      setError(err as Error);
    }
  };

  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="simulator-heading">
      <h2 id="simulator-heading">Would this request be allowed?</h2>
      <div class="row">
        <label class="field">
          <span>Grant</span>
          <select name="sim-grant" value={grant?.id} onChange={(e) => setGrantId(e.currentTarget.value)}>
            {grants.map((g) => (
              <option key={g.id} value={g.id}>
                {g.name}
              </option>
            ))}
          </select>
        </label>
        <label class="field narrow">
          <span>Method</span>
          <select name="sim-method" value={method} onChange={(e) => setMethod(e.currentTarget.value)}>
            {HTTP_METHODS.map((m) => (
              <option key={m}>{m}</option>
            ))}
          </select>
        </label>
      </div>
      <label class="field">
        <span>Path on {grant ? <code>{grant.upstream}</code> : "the upstream"}, with any query</span>
        <input name="sim-path" required spellcheck={false} value={path} onInput={(e) => setPath(e.currentTarget.value)} />
      </label>
      <label class="field">
        <span>Body (for GraphQL, JSON-RPC and AWS calls)</span>
        <textarea name="sim-body" rows={2} spellcheck={false} value={body} onInput={(e) => setBody(e.currentTarget.value)} />
      </label>
      <label class="check">
        <input type="checkbox" checked={approved} onChange={(e) => setApproved(e.currentTarget.checked)} />
        As if a human had approved the token
      </label>
      <div class="actions">
        <button type="submit" class="button primary" disabled={!grant}>
          Simulate
        </button>
      </div>
      <ErrorMessage error={error} />
      {result && (
        <p role="status" class={result.allow ? "verdict allow" : "verdict deny"}>
          {result.allow ? (
            <>
              <strong>Allowed</strong> by {result.rule}
              {result.destructive ? `, destructive (${result.destructive})` : ""}
            </>
          ) : (
            <>
              <strong>Denied</strong> ({result.code}): {result.reason}
            </>
          )}
          <small class="muted"> {result.scope}</small>
        </p>
      )}
    </form>
  );
}
