import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { createApi, type Me, type Permission } from "../api";
import { Console, type ConsoleContext } from "../context";
import { useHashRoute, useLoad } from "../hooks";
import { VIEWS } from "../views";

/** How long the status bar shows what just happened. */
const ANNOUNCEMENT_MS = 6_000;

/** The signed-in console: header, the sections the role may use, the current one, and a status bar. */
export function Shell({ adminKey, me, onSignOut }: { adminKey: string; me: Me; onSignOut: (notice: string | null) => void }) {
  const api = useMemo(() => createApi(adminKey, () => onSignOut("Your key is no longer accepted. Sign in again.")), [adminKey]);
  const can = (permission: Permission) => me.permissions.includes(permission);
  const killSwitch = useLoad(() => (can("revoke") ? api.killSwitch() : Promise.resolve(null)), [api], 10_000);
  const [announcement, setAnnouncement] = useState("");
  useEffect(() => {
    if (!announcement) return;
    const timer = setTimeout(() => setAnnouncement(""), ANNOUNCEMENT_MS);
    return () => clearTimeout(timer);
  }, [announcement]);
  const context: ConsoleContext = { api, me, can, announce: setAnnouncement, killSwitch };

  const route = useHashRoute();
  const views = VIEWS.filter((view) => can(view.permission));
  const view = views.find((v) => v.id === route) ?? views[0]!;
  const heading = useRef<HTMLHeadingElement>(null);
  const firstRender = useRef(true);
  useEffect(() => {
    document.title = `${view.title} · Keyward console`;
    // After navigating, keyboard and screen-reader users land on the new section's heading.
    if (!firstRender.current) heading.current?.focus();
    firstRender.current = false;
  }, [view.id]);

  return (
    <Console.Provider value={context}>
      <a
        class="skip-link"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          heading.current?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="topbar">
        <span class="brand">Keyward</span>
        {killSwitch.data?.engaged && (
          <a class="pill danger" href="#/kill-switch">
            Kill switch engaged
          </a>
        )}
        <span class="who">
          Signed in as <strong>{me.name}</strong> <span class="tag">{me.role}</span>
        </span>
        <button type="button" class="button small" onClick={() => onSignOut(null)}>
          Sign out
        </button>
      </header>
      <div class="layout">
        <nav aria-label="Console sections">
          <ul>
            {views.map((v) => (
              <li key={v.id}>
                <a href={`#/${v.id}`} aria-current={v.id === view.id ? "page" : undefined}>
                  {v.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main">
          <h1 ref={heading} tabIndex={-1}>
            {view.title}
          </h1>
          <view.component key={view.id} />
        </main>
      </div>
      <p class="status-bar" role="status" aria-live="polite">
        {announcement}
      </p>
    </Console.Provider>
  );
}
