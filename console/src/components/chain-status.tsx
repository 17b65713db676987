import { useConsole } from "../context";
import { useLoad } from "../hooks";
import { ErrorMessage } from "./notice";

/** The audit log's hash chain, re-walked by the server (GET /v1/audit/verify). */
export function ChainStatus() {
  const { api } = useConsole();
  const verification = useLoad(() => api.verifyAudit(), [api]);
  const result = verification.data;
  return (
    <section class="chain" aria-labelledby="chain-heading">
      <h2 id="chain-heading">Chain verification</h2>
      <ErrorMessage error={verification.error} />
      <p role="status" class={result ? (result.ok ? "chain-ok" : "chain-broken") : "loading"}>
        {verification.loading
          ? "Verifying…"
          : result?.ok
            ? `Intact: ${result.checkedEvents.toLocaleString()} events checked up to #${result.head.id}.`
            : result
              ? `Broken at ${result.firstBroken?.at} ${result.firstBroken?.id}: ${result.firstBroken?.reason}`
              : ""}
      </p>
      {result && (
        <p class="muted mono" title="Record this head elsewhere to detect a rewrite of the log's tail later.">
          head {result.head.hash.slice(0, 16)}…
        </p>
      )}
      <button type="button" class="button small" onClick={() => void verification.reload()}>
        Verify again
      </button>
    </section>
  );
}
