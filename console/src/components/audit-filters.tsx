import { useState } from "preact/hooks";
import { HTTP_METHODS, type AuditFilters } from "../api";
import { ERROR_CODES } from "../../../src/sdk/codes";

/** Refusal codes, from the broker's catalogue (docs/errors.md), grouped by the step that raises them. */
const REFUSAL_CODES = Object.entries(ERROR_CODES)
  .filter(([, entry]) => entry.step !== "sdk")
  .map(([code, entry]) => ({ code, step: entry.step, meaning: entry.meaning }));

/** The kinds of event Keyward writes (src/audit/audit.ts). */
const KINDS = [
  "proxy",
  "proxy.response",
  "token.issued",
  "token.refused",
  "revocation.created",
  "revocation.refused",
  "kill_switch.engaged",
  "kill_switch.lifted",
  "admin.change",
  "approval.requested",
  "approval.notified",
  "approval.decided",
  "approval.collected",
];

const TEXT_FIELDS = [
  // As the events recorded them: a deleted or renamed agent or grant is found under the name it had.
  ["agentName", "Agent name"],
  ["grantName", "Grant name"],
  ["agentId", "Agent id"],
  ["grantId", "Grant id"],
  ["jti", "Token (jti)"],
  ["upstream", "Upstream"],
  ["environment", "Environment"],
  ["pathPrefix", "Path starts with"],
] as const;

/** datetime-local has no zone: it is the browser's local time, sent as an ISO instant. */
const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;
const toInstant = (local: string) => (local ? new Date(local).toISOString() : undefined);

/** The audit log's filters (the same as GET /v1/audit takes); applied on submit. */
export function AuditFilterForm({ onApply }: { onApply: (filters: AuditFilters) => void }) {
  const [draft, setDraft] = useState<Record<string, string>>({});
  const field = (name: string) => ({
    id: `filter-${name}`,
    name,
    value: draft[name] ?? "",
    onInput: (e: { currentTarget: { value: string } }) => setDraft({ ...draft, [name]: e.currentTarget.value }),
  });
  const submit = (event: Event) => {
    event.preventDefault();
    const { since, until, ...rest } = draft;
    const filters = { ...rest, since: toInstant(since ?? ""), until: toInstant(until ?? "") };
    onApply(Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) as AuditFilters);
  };
  const clear = () => {
    setDraft({});
    onApply({});
  };
  return (
    <form class="filters" onSubmit={submit} aria-label="Audit log filters">
      <div class="field">
        <label for="filter-kind">Kind</label>
        <select {...field("kind")} onChange={field("kind").onInput}>
          <option value="">any</option>
          {KINDS.map((kind) => (
            <option key={kind}>{kind}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="filter-decision">Decision</label>
        <select {...field("decision")} onChange={field("decision").onInput}>
          <option value="">any</option>
          <option>allow</option>
          <option>deny</option>
        </select>
      </div>
      <div class="field">
        <label for="filter-reason">Refusal code</label>
        <select {...field("reason")} onChange={field("reason").onInput}>
          <option value="">any</option>
          {REFUSAL_CODES.map(({ code, step, meaning }) => (
            <option key={code} value={code} title={meaning}>
              {code} ({step})
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="filter-method">Method</label>
        <select {...field("method")} onChange={field("method").onInput}>
          <option value="">any</option>
          {HTTP_METHODS.map((method) => (
            <option key={method}>{method}</option>
          ))}
        </select>
      </div>
      {TEXT_FIELDS.map(([name, label]) => (
        <div class="field" key={name}>
          <label for={`filter-${name}`}>{label}</label>
          <input {...field(name)} spellcheck={false} />
        </div>
      ))}
      <div class="field">
        <label for="filter-since">Since ({BROWSER_ZONE})</label>
        <input type="datetime-local" step={1} {...field("since")} />
      </div>
      <div class="field">
        <label for="filter-until">Until ({BROWSER_ZONE})</label>
        <input type="datetime-local" step={1} {...field("until")} />
      </div>
      <div class="actions">
        <button type="submit" class="button primary">
          Apply filters
        </button>
        <button type="button" class="button" onClick={clear}>
          Clear
        </button>
      </div>
    </form>
  );
}
