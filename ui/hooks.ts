import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import type { ApiClient, NodeEvent } from "./api.js";
import type { Identity } from "./session.js";

export interface Session {
  client: ApiClient;
  identity: Identity;
  /** Subscribe to live events; returns the unsubscribe. */
  onEvent(listener: (event: NodeEvent) => void): () => void;
  /** Say something to screen readers (an aria-live region). */
  announce(message: string): void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload(): void;
}

/** Load `loader()` now and whenever a key changes; `reload` refetches (live updates call it). */
export function useResource<T>(loader: () => Promise<T>, keys: unknown[]): Resource<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const generation = useRef(0);
  const load = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    loader().then(
      (data) => mine === generation.current && setState({ data, loading: false }),
      (error: unknown) =>
        mine === generation.current &&
        setState((s) => ({ ...s, error: error instanceof Error ? error : new Error(String(error)), loading: false })),
    );
  }, keys);
  useEffect(load, [load]);
  return { data: state.data, error: state.error, loading: state.loading, reload: load };
}

/**
 * Call `refresh` after live events that `matters` says concern this page, at most once per
 * `intervalMs`: a boot storm is hundreds of events a second, the page needs one reload, not hundreds.
 */
export function useLiveRefresh(matters: (event: NodeEvent) => boolean, refresh: () => void, intervalMs = 1000): void {
  const { onEvent } = useSession();
  const latest = useRef({ matters, refresh });
  latest.current = { matters, refresh };
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let last = 0;
    const off = onEvent((event) => {
      if (!latest.current.matters(event) || timer !== undefined) return;
      const wait = Math.max(0, last + intervalMs - Date.now());
      timer = setTimeout(() => {
        timer = undefined;
        last = Date.now();
        latest.current.refresh();
      }, wait);
    });
    return () => {
      off();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [onEvent, intervalMs]);
}
