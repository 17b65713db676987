import { useEffect, useRef, useState } from "preact/hooks";
import type { JSX } from "preact";

export type ConfirmOptions = {
  title: string;
  message: string;
  confirmLabel: string;
  /** Red, for what cannot be undone from here. */
  danger?: boolean;
  /** Ask for a reason (or note), sent with the action and recorded in the audit log. */
  reasonLabel?: string;
  /** The user must type this word to enable the confirm button (the kill switch). */
  typeToConfirm?: string;
};

type Pending = ConfirmOptions & { resolve: (reason: string | null) => void };

/**
 * A modal confirmation (native <dialog>: focus is trapped inside, Escape cancels). `ask` resolves with the
 * reason typed (possibly empty) on confirm, or null on cancel.
 */
export function useConfirm(): [JSX.Element | null, (options: ConfirmOptions) => Promise<string | null>] {
  const [pending, setPending] = useState<Pending | null>(null);
  const ask = (options: ConfirmOptions) => new Promise<string | null>((resolve) => setPending({ ...options, resolve }));
  const close = (reason: string | null) => {
    pending?.resolve(reason);
    setPending(null);
  };
  return [pending && <ConfirmDialog {...pending} onClose={close} />, ask];
}

function ConfirmDialog(props: ConfirmOptions & { onClose: (reason: string | null) => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [typed, setTyped] = useState("");
  useEffect(() => {
    const element = dialog.current!;
    // Whatever had focus gets it back when the dialog closes.
    const opener = document.activeElement as HTMLElement | null;
    element.showModal();
    return () => opener?.focus();
  }, []);
  const confirmed = props.typeToConfirm === undefined || typed.trim().toUpperCase() === props.typeToConfirm;
  const submit = (event: Event) => {
    event.preventDefault();
    if (confirmed) props.onClose(reason.trim());
  };
  return (
    <dialog ref={dialog} class="dialog" aria-labelledby="confirm-title" aria-describedby="confirm-message" onCancel={() => props.onClose(null)}>
      <form onSubmit={submit}>
        <h2 id="confirm-title">{props.title}</h2>
        <p id="confirm-message">{props.message}</p>
        {props.reasonLabel && (
          <label class="field">
            <span>{props.reasonLabel}</span>
            <input value={reason} maxLength={500} onInput={(e) => setReason(e.currentTarget.value)} />
          </label>
        )}
        {props.typeToConfirm && (
          <label class="field">
            <span>
              Type <strong>{props.typeToConfirm}</strong> to confirm
            </span>
            <input value={typed} autoComplete="off" onInput={(e) => setTyped(e.currentTarget.value)} />
          </label>
        )}
        <div class="actions">
          <button type="button" class="button" autoFocus onClick={() => props.onClose(null)}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? "button danger" : "button primary"} disabled={!confirmed}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
