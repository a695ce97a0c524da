import "./style.css";
import { render } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, createClient, type NodeEvent, prefetch, type StreamStatus, subscribeEvents } from "./api.js";
import { ErrorNote } from "./common.js";
import { type Session, SessionContext } from "./hooks.js";
import { HealthPage } from "./pages/health.js";
import { ImagesPage } from "./pages/images.js";
import { LeasesPage } from "./pages/leases.js";
import { NodePage } from "./pages/node.js";
import { NodesPage } from "./pages/nodes.js";
import { Overview } from "./pages/overview.js";
import { currentRoute, href, type Route, useRoute } from "./router.js";
import { forgetToken, type Identity, storedToken, storeToken, whoami } from "./session.js";

function App() {
  const [token, setToken] = useState(storedToken);
  const [identity, setIdentity] = useState<Identity | undefined>();
  const [problem, setProblem] = useState<Error | undefined>();

  const signOut = useCallback((why?: string) => {
    forgetToken();
    setToken(undefined);
    setIdentity(undefined);
    setProblem(why ? new Error(why) : undefined);
  }, []);

  // A token kept from earlier in this tab is checked again before anything is shown; the overview's
  // counts are asked for meanwhile (shown only once the token is confirmed).
  useEffect(() => {
    if (!token || identity) return;
    const client = createClient(token, () => undefined);
    if (currentRoute().path === "/") prefetch(client, ["/fleet"]);
    whoami(client).then(setIdentity, (error: unknown) =>
      signOut(error instanceof ApiError ? `Signed out: ${error.message}` : String(error)),
    );
  }, [token, identity, signOut]);

  if (!token)
    return (
      <SignIn
        problem={problem}
        onSignedIn={(t, who) => {
          storeToken(t);
          setIdentity(who);
          setToken(t);
        }}
      />
    );
  if (!identity)
    return (
      <main id="main" class="signin">
        <p aria-busy="true">Checking the token…</p>
      </main>
    );
  return <SignedIn token={token} identity={identity} onSignOut={signOut} />;
}

function SignIn(props: { problem: Error | undefined; onSignedIn(token: string, identity: Identity): void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<Error | undefined>(props.problem);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <main id="main" class="signin">
      <h1>Centra PXE</h1>
      <form
        aria-labelledby="signin-title"
        onSubmit={async (event) => {
          event.preventDefault();
          setBusy(true);
          setError(undefined);
          const candidate = token.trim();
          try {
            const identity = await whoami(createClient(candidate, () => undefined));
            props.onSignedIn(candidate, identity);
          } catch (e) {
            setError(
              e instanceof ApiError && e.status === 401 ? new Error(`Not signed in: ${e.message}`) : (e as Error),
            );
            input.current?.focus();
          } finally {
            setBusy(false);
          }
        }}
      >
        <h2 id="signin-title">Sign in</h2>
        <p>
          Paste an API token (<code>centra-pxe token create NAME</code> on the server). It is kept in this tab only,
          until you sign out or close it.
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          ref={input}
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
          aria-describedby={error ? "signin-error" : undefined}
        />
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
        {error && (
          <p id="signin-error" class="error" role="alert">
            {error.message}
          </p>
        )}
      </form>
    </main>
  );
}

const NAV: { path: string; label: string }[] = [
  { path: "/", label: "Overview" },
  { path: "/nodes", label: "Nodes" },
  { path: "/leases", label: "Leases" },
  { path: "/images", label: "Images" },
  { path: "/health", label: "Health" },
];

function SignedIn(props: { token: string; identity: Identity; onSignOut(why?: string): void }) {
  const route = useRoute();
  const [stream, setStream] = useState<StreamStatus>("connecting");
  const [announcement, setAnnouncement] = useState("");
  const listeners = useRef(new Set<(event: NodeEvent) => void>());
  const { token, identity, onSignOut } = props;

  const session = useMemo<Session>(
    () => ({
      client: createClient(token, () => onSignOut("Signed out: the server no longer accepts this token.")),
      identity,
      onEvent: (listener) => {
        listeners.current.add(listener);
        return () => listeners.current.delete(listener);
      },
      announce: setAnnouncement,
    }),
    [token, identity, onSignOut],
  );

  useEffect(
    () =>
      subscribeEvents(
        token,
        (event) => {
          for (const listener of listeners.current) listener(event);
        },
        setStream,
      ),
    [token],
  );

  // After a route change, focus the page's heading so a screen reader starts reading the new page.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById("page-title")?.focus();
  }, [route.path]);

  const section = `/${route.path.split("/")[1] ?? ""}`;
  return (
    <SessionContext.Provider value={session}>
      {/* A button, not a #main link: the fragment holds the route. */}
      <button type="button" class="skip" onClick={() => document.getElementById("main")?.focus()}>
        Skip to content
      </button>
      <header class="top">
        <span class="brand">Centra PXE</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.path}>
                <a href={href(item.path)} aria-current={section === item.path ? "page" : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class={`stream stream-${stream}`} data-testid="stream-status">
          {stream === "live" ? "Live" : stream === "connecting" ? "Connecting…" : "Reconnecting…"}
        </span>
        <span class="who" data-testid="who">
          {identity.name} ({identity.role})
        </span>
        <button type="button" onClick={() => onSignOut()}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
      <div class="visually-hidden" aria-live="polite" data-testid="announcer">
        {announcement}
      </div>
    </SessionContext.Provider>
  );
}

function Page({ route }: { route: Route }) {
  const parts = route.path.split("/").filter(Boolean);
  if (parts.length === 0) return <Overview />;
  if (parts[0] === "nodes" && parts.length === 1) return <NodesPage route={route} />;
  if (parts[0] === "nodes" && parts[1]) return <NodePage key={parts[1]} id={decodeURIComponent(parts[1])} />;
  if (parts[0] === "leases") return <LeasesPage route={route} />;
  if (parts[0] === "images") return <ImagesPage />;
  if (parts[0] === "health") return <HealthPage />;
  return (
    <>
      <h1 tabIndex={-1} id="page-title">
        Not found
      </h1>
      <ErrorNote error={new Error(`No page ${route.path}`)} />
      <p>
        <a href={href("/")}>To the overview</a>
      </p>
    </>
  );
}

render(<App />, document.getElementById("app")!);
