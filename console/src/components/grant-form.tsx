import { useState } from "preact/hooks";
import { HTTP_METHODS, type Agent, type Grant, type HttpMethod, type Upstream } from "../api";
import { useConsole } from "../context";
import { CheckboxGroup } from "./checkbox-group";
import { ErrorMessage } from "./notice";

const METHOD_OPTIONS = HTTP_METHODS.map((m) => ({ value: m, label: m }));
type Draft = {
  name: string;
  upstream: string;
  agents: string[];
  methods: HttpMethod[];
  paths: string;
  never: HttpMethod[];
  ttlMinutes: number;
  requiresApproval: boolean;
};
const EMPTY: Draft = { name: "", upstream: "", agents: [], methods: ["GET"], paths: "/**", never: ["DELETE"], ttlMinutes: 15, requiresApproval: false };

/** A new grant: who, which upstream, which methods on which paths, what never, for how long. */
export function GrantForm(props: { agents: Agent[]; upstreams: Upstream[]; onCreated: (grant: Grant) => void }) {
  const { api } = useConsole();
  const [draft, setDraft] = useState(EMPTY);
  const set = (change: Partial<Draft>) => setDraft({ ...draft, ...change });
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  const upstream = draft.upstream || props.upstreams[0]?.name || "";

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const grant = await api.createGrant({
        name: draft.name.trim(),
        upstream,
        agents: draft.agents,
        methods: draft.methods,
        paths: draft.paths.split("\n").map((p) => p.trim()).filter(Boolean),
        deny: draft.never.map((method) => ({ method })),
        maxTtlSeconds: draft.ttlMinutes * 60,
        requiresApproval: draft.requiresApproval,
      });
      setError(undefined);
      setDraft(EMPTY);
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
          <input name="grant-name" required maxLength={200} value={draft.name} onInput={(e) => set({ name: e.currentTarget.value })} />
        </label>
        <label class="field">
          <span>Upstream</span>
          <select name="grant-upstream" required value={upstream} onChange={(e) => set({ upstream: e.currentTarget.value })}>
            {props.upstreams.map((u) => (
              <option key={u.id} value={u.name}>
                {u.name} ({u.environment})
              </option>
            ))}
          </select>
        </label>
        <label class="field narrow">
          <span>Max token life (min)</span>
          <input type="number" name="grant-ttl" min={1} max={60} required value={draft.ttlMinutes} onInput={(e) => set({ ttlMinutes: Number(e.currentTarget.value) })} />
        </label>
      </div>
      <CheckboxGroup
        legend="Agents"
        name="grant-agents"
        options={props.agents.map((a) => ({ value: a.id, label: a.name }))}
        selected={draft.agents}
        onChange={(agents) => set({ agents })}
      />
      <div class="row">
        <CheckboxGroup legend="Allowed methods" name="grant-methods" options={METHOD_OPTIONS} selected={draft.methods} onChange={(methods) => set({ methods })} />
        <CheckboxGroup legend="Never allowed (deny rules)" name="grant-deny" options={METHOD_OPTIONS} selected={draft.never} onChange={(never) => set({ never })} />
      </div>
      <div class="field">
        <label for="grant-paths">Paths, one per line</label>
        <textarea id="grant-paths" rows={2} required spellcheck={false} value={draft.paths} onInput={(e) => set({ paths: e.currentTarget.value })} aria-describedby="paths-hint" />
        <small id="paths-hint" class="hint">
          <code>*</code> or <code>{"{name}"}</code> match one segment, <code>**</code> any depth: <code>/v1/projects/*</code>
        </small>
      </div>
      <label class="check">
        <input type="checkbox" checked={draft.requiresApproval} onChange={(e) => set({ requiresApproval: e.currentTarget.checked })} />
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
