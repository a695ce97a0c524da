import { useState } from "preact/hooks";
import { NODE_STATES } from "../../src/lifecycle/lifecycle.js";
import type { NodePage } from "../api.js";
import { ErrorNote, Loading, nodeName, PageTitle, StateBadge, Time } from "../common.js";
import { useLiveRefresh, useResource, useSession } from "../hooks.js";
import { href, type Route } from "../router.js";

export const PAGE_SIZE = 50;

/** The nodes table: filters, search and the page live in the URL fragment, so a view can be shared. */
export function NodesPage({ route }: { route: Route }) {
  const { client } = useSession();
  const state = route.params.get("state") ?? "";
  const profile = route.params.get("profile") ?? "";
  const label = route.params.get("label") ?? "";
  const q = route.params.get("q") ?? "";
  const page = Math.max(1, Number(route.params.get("page")) || 1);
  const query = new URLSearchParams();
  if (state) query.set("state", state);
  if (profile) query.set("profile", profile);
  if (label) query.set("label", label);
  if (q) query.set("q", q);
  query.set("offset", String((page - 1) * PAGE_SIZE));
  query.set("limit", String(PAGE_SIZE));
  const nodes = useResource(() => client.get<NodePage>(`/nodes?${query}`), [client, query.toString()]);
  useLiveRefresh((event) => event.kind !== "updated" || event.toState !== undefined, nodes.reload, 2000);

  const total = nodes.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const link = (to: number) => href("/nodes", { state, profile, label, q, page: to > 1 ? to : undefined });
  const first = total === 0 ? 0 : (page - 1) * PAGE_SIZE + 1;
  const last = Math.min(total, page * PAGE_SIZE);

  return (
    <>
      <PageTitle>Nodes</PageTitle>
      <Filters key={route.params.toString()} state={state} profile={profile} label={label} q={q} />
      <ErrorNote error={nodes.error} />
      {!nodes.data && !nodes.error && <Loading what="nodes" />}
      {nodes.data && (
        <>
          <p aria-live="polite" data-testid="node-count">
            {total === 0
              ? "No node matches."
              : `${first.toLocaleString()}–${last.toLocaleString()} of ${total.toLocaleString()} nodes`}
          </p>
          <div class="table-wrap">
            <table data-testid="nodes-table">
              <caption class="visually-hidden">Nodes, by when they were added</caption>
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">MACs</th>
                  <th scope="col">State</th>
                  <th scope="col">Profile</th>
                  <th scope="col">Address</th>
                  <th scope="col">Labels</th>
                  <th scope="col">Last seen</th>
                </tr>
              </thead>
              <tbody>
                {nodes.data.nodes.map((node) => (
                  <tr key={node.id} data-node={node.id}>
                    <td>
                      <a href={href(`/nodes/${node.id}`)}>{nodeName(node)}</a>
                    </td>
                    <td class="mono">{node.macs.join(", ")}</td>
                    <td>
                      <StateBadge state={node.state} />
                    </td>
                    <td>{node.profile ?? "—"}</td>
                    <td class="mono">{node.ipAddress ?? "—"}</td>
                    <td>
                      {Object.entries(node.labels)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(", ")}
                    </td>
                    <td>
                      <Time iso={node.lastSeenAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav class="pager" aria-label="Pages of nodes">
            {page > 1 ? <a href={link(page - 1)}>← Previous</a> : <span class="muted">← Previous</span>}
            <span>
              Page {page} of {pages.toLocaleString()}
            </span>
            {page < pages ? <a href={link(page + 1)}>Next →</a> : <span class="muted">Next →</span>}
          </nav>
        </>
      )}
    </>
  );
}

function Filters(props: { state: string; profile: string; label: string; q: string }) {
  const [form, setForm] = useState(props);
  const field = (name: keyof typeof props) => ({
    value: form[name],
    onInput: (event: Event) => setForm({ ...form, [name]: (event.currentTarget as HTMLInputElement).value }),
  });
  return (
    <search aria-label="Filter nodes">
      <form
        class="filters"
        onSubmit={(event) => {
          event.preventDefault();
          location.hash = href("/nodes", { ...form });
        }}
      >
        <label>
          Search
          <input type="search" placeholder="MAC or hostname" {...field("q")} />
        </label>
        <label>
          State
          <select {...field("state")}>
            <option value="">any</option>
            {NODE_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Profile
          <input type="text" placeholder="worker" {...field("profile")} />
        </label>
        <label>
          Label
          <input type="text" placeholder="rack=a1" {...field("label")} />
        </label>
        <button type="submit" class="primary">
          Apply
        </button>
      </form>
    </search>
  );
}
