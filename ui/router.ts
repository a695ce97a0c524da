// Routes live in the URL's fragment (`/ui/#/nodes/n-…`): the daemon serves one page at /ui/ and no
// other path under it, so there is nothing else for a path to reach.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** `/`, `/nodes`, `/nodes/n-123abc…`, `/leases`, … */
  path: string;
  params: URLSearchParams;
}

export function currentRoute(): Route {
  const hash = location.hash.replace(/^#/, "") || "/";
  const q = hash.indexOf("?");
  return {
    path: q === -1 ? hash : hash.slice(0, q),
    params: new URLSearchParams(q === -1 ? "" : hash.slice(q + 1)),
  };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

/** A fragment link: `href("/nodes", { state: "ready" })` → `#/nodes?state=ready` (empty values left out). */
export function href(path: string, params: Record<string, string | number | undefined> = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params))
    if (value !== undefined && value !== "") search.set(key, String(value));
  const query = search.toString();
  return `#${path}${query ? `?${query}` : ""}`;
}
