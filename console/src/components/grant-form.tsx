import { useState } from "preact/hooks";
import { HTTP_METHODS, type Agent, type Grant, type HttpMethod, type Upstream } from "../api";
import { useConsole } from "../context";
import { CheckboxGroup } from "./checkbox-group";
import { ErrorMessage } from "./notice";

const METHOD_OPTIONS = HTTP_METHODS.map((m) => ({ value: m, label: m }));
const DEFAULTS = { methods: ["GET"] as HttpMethod[], paths: "/**", never: ["DELETE"] as HttpMethod[], ttlMinutes: 15 };

/** A new grant: who, which upstream, which methods on which paths, what never, for how long. */
export function GrantForm(props: { agents: Agent[]; upstreams: Upstream[]; onCreated: (grant: Grant) => void }) {
  const { api } = useConsole();
  const [name, setName] = useState("");
  const [upstream, setUpstream] = useState("");
  const [agents, setAgents] = useState<string[]>([]);
  const [methods, setMethods] = useState<HttpMethod[]>(DEFAULTS.methods);
  const [paths, setPaths] = useState(DEFAULTS.paths);
  const [never, setNever] = useState<HttpMethod[]>(DEFAULTS.never);
  const [ttlMinutes, setTtlMinutes] = useState(DEFAULTS.ttlMinutes);
  const [requiresApproval, setRequiresApproval] = useState(false);
  const reset = () => {
    setName("");
    setAgents([]);
    setMethods(DEFAULTS.methods);
    setPaths(DEFAULTS.paths);
    setNever(DEFAULTS.never);
    setTtlMinutes(DEFAULTS.ttlMinutes);
    setRequiresApproval(false);
  };
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  const chosenUpstream = upstream || props.upstreams[0]?.name || "";

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const grant = await api.createGrant({
        name: name.trim(),
        upstream: chosenUpstream,
        agents,
        methods,
        paths: paths.split("\n").map((p) => p.trim()).filter(Boolean),
        deny: never.map((method) => ({ method })),
        maxTtlSeconds: ttlMinutes * 60,
        requiresApproval,
      });
      setError(undefined);
      reset();
      props.onCreated(grant);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="new-grant-heading">
      <h2 id="new-grant-heading">New grant</h2>
      <div class="row">
        <label class="field">
          <span>Name</span>
          <input name="grant-name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>Upstream</span>
          <select name="grant-upstream" required value={chosenUpstream} onChange={(e) => setUpstream(e.currentTarget.value)}>
            {props.upstreams.map((u) => (
              <option key={u.id} value={u.name}>
                {u.name} ({u.environment})
              </option>
            ))}
          </select>
        </label>
        <label class="field narrow">
          <span>Max token life (min)</span>
          <input type="number" name="grant-ttl" min={1} max={60} required value={ttlMinutes} onInput={(e) => setTtlMinutes(Number(e.currentTarget.value))} />
        </label>
      </div>
      <CheckboxGroup
        legend="Agents"
        name="grant-agents"
        options={props.agents.map((a) => ({ value: a.id, label: a.name }))}
        selected={agents}
        onChange={setAgents}
      />
      <div class="row">
        <CheckboxGroup legend="Allowed methods" name="grant-methods" options={METHOD_OPTIONS} selected={methods} onChange={setMethods} />
        <CheckboxGroup legend="Never allowed (deny rules)" name="grant-deny" options={METHOD_OPTIONS} selected={never} onChange={setNever} />
      </div>
      <div class="field">
        <label for="grant-paths">Paths, one per line</label>
        <textarea id="grant-paths" rows={2} required spellcheck={false} value={paths} onInput={(e) => setPaths(e.currentTarget.value)} aria-describedby="paths-hint" />
        <small id="paths-hint" class="hint">
          <code>*</code> or <code>{"{name}"}</code> match one segment, <code>**</code> any depth: <code>/v1/projects/*</code>
        </small>
      </div>
      <label class="check">
        <input type="checkbox" checked={requiresApproval} onChange={(e) => setRequiresApproval(e.currentTarget.checked)} />
        Every token needs a human's approval
      </label>
      <ErrorMessage error={error} />
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy || props.upstreams.length === 0}>
          Create grant
        </button>
      </div>
    </form>
  );
}
