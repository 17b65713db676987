import { useCallback, useEffect, useRef, useState } from "preact/hooks";

export type Loaded<T> = { data: T | undefined; error: Error | undefined; loading: boolean; reload: () => Promise<void> };

/**
 * Loads data with `load` now, whenever `deps` change, every `refreshMs` if given, and on `reload()`.
 * A failed refresh keeps the last data and reports the error beside it.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], refreshMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const mounted = useRef(true);
  // The caller names what `load` depends on.
  const reload = useCallback(async () => {
    try {
      const data = await load();
      if (mounted.current) setState({ data, loading: false });
    } catch (err) {
      if (mounted.current) setState((s) => ({ ...s, error: err as Error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    mounted.current = true;
    void reload();
    const timer = refreshMs ? setInterval(() => void reload(), refreshMs) : undefined;
    return () => {
      mounted.current = false;
      clearInterval(timer);
    };
  }, [reload, refreshMs]);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** The current time, re-rendering every `intervalMs` (countdowns). */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

/** The view named by the URL's fragment (`#/tokens`), following back and forward. */
export function useHashRoute(): string {
  const read = () => decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
