import { useEffect, useState } from "preact/hooks";
import { createApi, type Me } from "./api";
import { Shell } from "./components/shell";
import { SignIn } from "./components/sign-in";
import { forgetAdminKey, storeAdminKey, storedAdminKey } from "./session";

type Session = { adminKey: string; me: Me };

/** Signed out: the sign-in form. Signed in: the console, for as long as the key is accepted. */
export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(storedAdminKey() !== null);
  const [notice, setNotice] = useState<string | null>(null);

  // A reload keeps the tab's key: check it is still valid before showing anything.
  useEffect(() => {
    const adminKey = storedAdminKey();
    if (!adminKey) return;
    createApi(adminKey, forgetAdminKey)
      .whoami()
      .then((me) => setSession({ adminKey, me }), forgetAdminKey)
      .finally(() => setRestoring(false));
  }, []);

  const signIn = (adminKey: string, me: Me) => {
    storeAdminKey(adminKey);
    setNotice(null);
    setSession({ adminKey, me });
  };
  const signOut = (message: string | null) => {
    forgetAdminKey();
    setSession(null);
    setNotice(message);
  };

  if (restoring) return <p class="loading">Checking your key…</p>;
  if (!session) return <SignIn onSignedIn={signIn} notice={notice} />;
  return <Shell key={session.adminKey} adminKey={session.adminKey} me={session.me} onSignOut={signOut} />;
}
