import { useEffect, useRef, useState } from "preact/hooks";
import type { AuditEvent, AuditFilters } from "../api";
import { ActivityChart } from "../components/activity-chart";
import { AuditFilterForm } from "../components/audit-filters";
import { ChainStatus } from "../components/chain-status";
import { Empty, ErrorMessage } from "../components/notice";
import { useConsole } from "../context";
import { useNames, type Names } from "../names";
import { formatDateTime, utcDateTime } from "../format";
import { operationsSummary, recordedNames, visibleText } from "../../../src/audit/event-text";

/** Live events kept on screen at most; older ones are a "Load older" away. */
const MAX_ROWS = 500;
const RECONNECT_MS = 2_000;

type TailState = "off" | "connecting" | "live" | "reconnecting";

/** The audit log: filters, newest first, older pages on demand, a live tail, the chain's state and a chart. */
export function AuditView() {
  const { api } = useConsole();
  const names = useNames();
  const [filters, setFilters] = useState<AuditFilters>({});
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(0);
  const [error, setError] = useState<Error>();
  const [tailOn, setTailOn] = useState(true);
  const [freshIds, setFreshIds] = useState<Set<string>>(new Set());

  useEffect(() => {
    let current = true;
    api.audit(filters).then(
      (page) => {
        if (!current) return;
        setEvents(page.events);
        setCursor(page.nextCursor);
        setFreshIds(new Set());
        setError(undefined);
        setLoaded((n) => n + 1);
      },
      (err: Error) => current && setError(err),
    );
    return () => {
      current = false;
    };
  }, [api, filters]);

  const newestId = useRef("0");
  newestId.current = events[0]?.id ?? "0";
  const tail = useLiveTail(tailOn && loaded > 0, filters, newestId, loaded, (event) => {
    setEvents((list) => (list.some((e) => e.id === event.id) ? list : [event, ...list].slice(0, MAX_ROWS)));
    setFreshIds((ids) => new Set(ids).add(event.id));
  });

  const loadOlder = async () => {
    try {
      const page = await api.audit(filters, cursor ?? undefined);
      setEvents((list) => [...list, ...page.events]);
      setCursor(page.nextCursor);
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <>
      <div class="audit-overview">
        <ActivityChart />
        <ChainStatus />
      </div>
      <AuditFilterForm onApply={setFilters} />
      <div class="toolbar">
        <label class="switch">
          <input type="checkbox" checked={tailOn} onChange={(e) => setTailOn(e.currentTarget.checked)} />
          Live tail
        </label>
        <span role="status" class={`tail-state ${tail}`}>
          {tail === "live" ? "Live: new events appear at the top" : tail === "off" ? "Paused" : tail === "connecting" ? "Connecting…" : "Reconnecting…"}
        </span>
      </div>
      <ErrorMessage error={error} />
      {loaded === 0 && !error ? (
        <p class="loading">Loading…</p>
      ) : events.length === 0 ? (
        <Empty>No events match.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="audit">
            <caption class="visually-hidden">Audit events, newest first</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Actor</th>
                <th scope="col">Agent, grant</th>
                <th scope="col">Request</th>
                <th scope="col">Decision</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {events.map((event) => (
                <AuditRow key={event.id} event={event} fresh={freshIds.has(event.id)} names={names} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {cursor && (
        <button type="button" class="button" onClick={loadOlder}>
          Load older events
        </button>
      )}
    </>
  );
}

type EventDetails = Record<string, unknown> | null;

function AuditRow({ event, fresh, names }: { event: AuditEvent; fresh: boolean; names: Names }) {
  const details = event.details as EventDetails;
  // The names the event was made under, which outlive a deleted or renamed agent or grant; else today's.
  const recorded = recordedNames(details);
  const agentName = event.agentId ? (recorded.agent ?? names.agentName(event.agentId)) : null;
  const grantName = event.grantId ? (recorded.grant ?? names.grantName(event.grantId)) : null;
  const actorName = agentName && event.actor === `agent:${event.agentId}` ? agentName : names.actorName(event.actor);
  // What the agent sent (path, operations, reasons) is shown with bidi and zero-width characters escaped.
  const operations = operationsSummary(details).map(visibleText);
  const reasonText = typeof details?.reason === "string" ? visibleText(details.reason) : null;
  const path = event.path === null ? null : visibleText(event.path);
  const reason = event.reason === null ? null : visibleText(event.reason);
  return (
    <tr class={fresh ? "fresh" : undefined}>
      <td class="mono muted">{event.id}</td>
      <td class="nowrap">
        <time dateTime={event.at} title={utcDateTime(event.at)}>
          {formatDateTime(event.at)}
        </time>
      </td>
      <td class="nowrap">
        <code>{event.kind}</code>
      </td>
      <td class="nowrap" title={event.actor}>
        {actorName}
      </td>
      <td class="nowrap">
        <div title={event.agentId ?? undefined}>{agentName ?? "—"}</div>
        {grantName && (
          <div class="muted" title={event.grantId ?? undefined}>
            {grantName}
          </div>
        )}
      </td>
      <td class="wrap">
        {event.method && <strong>{event.method} </strong>}
        {event.upstream && <span class="muted">{event.upstream} </span>}
        {path && <code>{path}</code>}
        {event.status !== null && <span class="muted"> → {event.status}</span>}
        {!event.method && !event.upstream && !event.path && "—"}
        {operations.length > 0 && (
          <ul class="operations" aria-label="Operations">
            {operations.map((op) => (
              <li key={op}>
                <code>{op}</code>
              </li>
            ))}
          </ul>
        )}
      </td>
      <td>{event.decision ? <span class={`tag ${event.decision}`}>{event.decision}</span> : "—"}</td>
      <td class="wrap">
        {reason ?? ""}
        {reasonText && reasonText !== reason && <div class="muted">{reasonText}</div>}
      </td>
    </tr>
  );
}

/**
 * Follows the log from the newest event shown (GET /v1/audit/stream, read with fetch so the admin key
 * stays in the Authorization header), reconnecting from the last event seen when the stream ends.
 * Restarts whenever a new first page is loaded (`generation`).
 */
function useLiveTail(
  enabled: boolean,
  filters: AuditFilters,
  newestId: { current: string },
  generation: number,
  onEvent: (event: AuditEvent) => void,
): TailState {
  const { api } = useConsole();
  const [state, setState] = useState<TailState>("off");
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (!enabled) {
      setState("off");
      return;
    }
    const stop = new AbortController();
    void (async () => {
      let afterId = newestId.current;
      setState("connecting");
      while (!stop.signal.aborted) {
        try {
          const events = await api.tailAudit(filters, afterId, stop.signal);
          setState("live");
          for await (const event of events) {
            afterId = event.id;
            handler.current(event);
          }
        } catch {
          // Network error or the key is gone (then the console signs out): try again below, or stop.
        }
        if (stop.signal.aborted) return;
        setState("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    })();
    return () => stop.abort();
  }, [api, enabled, filters, generation]);
  return state;
}
