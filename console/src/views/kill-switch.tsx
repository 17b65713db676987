import { useState } from "preact/hooks";
import { useConfirm } from "../components/confirm-dialog";
import { ErrorMessage } from "../components/notice";
import { useConsole } from "../context";
import { formatDateTime, fromNow } from "../format";
import { useNames } from "../names";
import { visibleText } from "../../../src/audit/event-text";

/**
 * The incident button: freezes every agent token, including ones issued while it is engaged. Security may
 * engage it; only an admin may lift it.
 */
export function KillSwitchView() {
  const { api, can, announce, killSwitch } = useConsole();
  const names = useNames();
  const [dialog, ask] = useConfirm();
  const [error, setError] = useState<Error>();
  const state = killSwitch.data;

  const act = async (action: () => Promise<unknown>, done: string) => {
    try {
      await action();
      setError(undefined);
      announce(done);
    } catch (err) {
      setError(err as Error);
    }
    await killSwitch.reload();
  };
  const engage = async () => {
    const reason = await ask({
      title: "Engage the kill switch?",
      message: "Every agent token stops working at once, on every replica, until an admin lifts the switch. Agents cannot get working tokens meanwhile.",
      confirmLabel: "Engage kill switch",
      danger: true,
      reasonLabel: "Reason (recorded in the audit log)",
      typeToConfirm: "ENGAGE",
    });
    if (reason !== null) await act(() => api.engageKillSwitch(reason || "engaged from the console"), "Kill switch engaged: every agent token is frozen.");
  };
  const lift = async () => {
    const reason = await ask({
      title: "Lift the kill switch?",
      message: "Agent tokens that are neither expired nor revoked work again at once.",
      confirmLabel: "Lift kill switch",
      reasonLabel: "Reason (recorded in the audit log)",
    });
    if (reason !== null) await act(() => api.liftKillSwitch(reason || "lifted from the console"), "Kill switch lifted.");
  };

  return (
    <>
      <ErrorMessage error={error ?? killSwitch.error} />
      {!state ? (
        <p class="loading">Loading…</p>
      ) : (
        <section class={state.engaged ? "kill-switch engaged" : "kill-switch"} aria-labelledby="kill-switch-state">
          <h2 id="kill-switch-state">{state.engaged ? "Engaged: every agent token is frozen" : "Off: agent tokens work normally"}</h2>
          {state.engaged && (
            <p>
              Since {formatDateTime(state.engagedAt!)} ({fromNow(state.engagedAt!)}), by <strong>{names.actorName(state.engagedBy!)}</strong>
              {state.reason && <>: “{visibleText(state.reason)}”</>}.
            </p>
          )}
          {!state.engaged && <p>Engaging it freezes every agent token at once, on every replica, until an admin lifts it.</p>}
          {!state.engaged ? (
            <button type="button" class="button danger huge" onClick={engage}>
              Engage kill switch
            </button>
          ) : can("manage") ? (
            <button type="button" class="button huge" onClick={lift}>
              Lift kill switch
            </button>
          ) : (
            <p class="muted">Only an admin may lift it, so that whoever pulled it is not alone in deciding the incident is over.</p>
          )}
        </section>
      )}
      {dialog}
    </>
  );
}
