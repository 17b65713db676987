import { useState } from "preact/hooks";
import { ApiError, createApi, type Me } from "../api";

/** Asks for an admin key and checks it with GET /v1/whoami before keeping it. */
export function SignIn({ onSignedIn, notice }: { onSignedIn: (key: string, me: Me) => void; notice: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = await createApi(key.trim(), () => {}).whoami();
      onSignedIn(key.trim(), me);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? "That key is unknown or revoked." : (err as Error).message);
      setBusy(false);
    }
  };
  return (
    <main class="sign-in">
      <form class="card" onSubmit={submit} aria-describedby="sign-in-help">
        <h1>Keyward console</h1>
        <p id="sign-in-help">
          Sign in with an admin key (<code>kwa_…</code>). It is kept in this tab only and forgotten when the tab closes.
        </p>
        {notice && (
          <p class="notice" role="status">
            {notice}
          </p>
        )}
        <label class="field">
          <span>Admin key</span>
          <input
            type="password"
            name="admin-key"
            autoComplete="off"
            spellcheck={false}
            required
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            aria-invalid={error !== null}
            aria-describedby={error ? "sign-in-error" : undefined}
          />
        </label>
        {error && (
          <p id="sign-in-error" class="notice error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="button primary" disabled={busy || key.trim() === ""}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
