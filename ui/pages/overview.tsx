import { NODE_STATES } from "../../src/lifecycle/lifecycle.js";
import { useEffect, useRef } from "preact/hooks";
import type { BootAttemptView } from "../../src/timeline/attempt.js";
import { type FleetSummary, getOnce, optional } from "../api.js";
import { ErrorNote, Loading, nodeName, PageTitle, StateBadge, since } from "../common.js";
import { useLiveRefresh, useResource, useSession } from "../hooks.js";
import { href } from "../router.js";
import { fetchHealth, HealthList } from "./health.js";

/** An alert as the alerts part (issue 15) lists it; every field but the name is optional here. */
interface Alert {
  name?: string;
  alertname?: string;
  summary?: string;
  nodeId?: string;
  severity?: string;
  startsAt?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function Overview() {
  const { client } = useSession();
  const fleet = useResource(() => getOnce<FleetSummary>(client, "/fleet"), [client]);
  // The boot timeline's attempts under way (every machine, registered or not), where the server has one.
  const attempts = useResource(
    () => optional<{ boots: BootAttemptView[] }>(client, "/boots?verdict=in-progress&limit=100"),
    [client],
  );
  const alerts = useResource(() => optional<{ alerts: Alert[] }>(client, "/alerts"), [client]);
  const health = useResource(fetchHealth, []);
  // The server keeps the summary between events and recomputes it at most once a second: one that
  // predates an event this page saw is asked for again.
  const newestSeen = useRef(0);
  useLiveRefresh(
    (event) => {
      newestSeen.current = Math.max(newestSeen.current, event.seq);
      return event.kind !== "updated" || event.toState !== undefined;
    },
    () => {
      fleet.reload();
      attempts.reload();
      alerts.reload();
    },
    // At most every 2 s: in a boot storm every second brings events, and each reload is 3 reads.
    2000,
  );
  const summary = fleet.data;
  useEffect(() => {
    if (summary?.asOfSeq === undefined || summary.asOfSeq >= newestSeen.current) return;
    const timer = setTimeout(fleet.reload, 1000);
    return () => clearTimeout(timer);
  }, [summary, fleet.reload]);
  return (
    <>
      <PageTitle>Fleet overview</PageTitle>
      <ErrorNote error={fleet.error} />
      <section aria-labelledby="counts-title">
        <h2 id="counts-title">Nodes by state</h2>
        {summary ? (
          <ul class="cards" data-testid="state-counts">
            <li class="card">
              <a href={href("/nodes")}>
                <span class="count" data-state="total">
                  {summary.total.toLocaleString()}
                </span>
                <span class="label">all nodes</span>
              </a>
            </li>
            {NODE_STATES.map((state) => (
              <li class={`card card-${state}`} key={state}>
                <a href={href("/nodes", { state })}>
                  <span class="count" data-state={state}>
                    {summary.byState[state].toLocaleString()}
                  </span>
                  <span class="label">{state}</span>
                </a>
              </li>
            ))}
          </ul>
        ) : (
          !fleet.error && <Loading what="counts" />
        )}
      </section>
      <section aria-labelledby="progress-title">
        <h2 id="progress-title">
          Nodes being provisioned{summary ? ` (${summary.provisioningTotal.toLocaleString()})` : ""}
        </h2>
        {summary && summary.provisioning.length === 0 && <p class="muted">No node is being provisioned.</p>}
        {summary && summary.provisioning.length > 0 && (
          <div class="table-wrap">
            <table data-testid="in-progress">
              <caption class="visually-hidden">Nodes being provisioned, the longest-running first</caption>
              <thead>
                <tr>
                  <th scope="col">Node</th>
                  <th scope="col">Profile</th>
                  <th scope="col">State</th>
                  <th scope="col">For</th>
                  <th scope="col">Deadline</th>
                </tr>
              </thead>
              <tbody>
                {summary.provisioning.map((node) => (
                  <tr key={node.id}>
                    <td>
                      <a href={href(`/nodes/${node.id}`)}>{nodeName(node)}</a>
                    </td>
                    <td>{node.profile ?? "—"}</td>
                    <td>
                      <StateBadge state={node.state} />
                    </td>
                    <td>{since(node.stateChangedAt)}</td>
                    <td>{node.provisionDeadline ? new Date(node.provisionDeadline).toLocaleTimeString() : "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {summary && summary.provisioningTotal > summary.provisioning.length && (
          <p>
            <a href={href("/nodes", { state: "provisioning" })}>
              All {summary.provisioningTotal.toLocaleString()} nodes in provisioning
            </a>
          </p>
        )}
      </section>
      {attempts.data && (
        <section aria-labelledby="attempts-title">
          <h2 id="attempts-title">Boot attempts under way ({attempts.data.boots.length})</h2>
          {attempts.data.boots.length === 0 ? (
            <p class="muted">No machine is booting.</p>
          ) : (
            <div class="table-wrap">
              <table data-testid="attempts">
                <caption class="visually-hidden">Boot attempts still in progress, the newest news first</caption>
                <thead>
                  <tr>
                    <th scope="col">Machine</th>
                    <th scope="col">Started</th>
                    <th scope="col">Last phase</th>
                    <th scope="col">Where it is</th>
                  </tr>
                </thead>
                <tbody>
                  {attempts.data.boots.map((boot) => (
                    <tr key={boot.attempt}>
                      <td class="mono">
                        {boot.nodeId ? <a href={href(`/nodes/${boot.nodeId}`)}>{boot.mac}</a> : boot.mac}
                      </td>
                      <td>{since(boot.startedAt)} ago</td>
                      <td>{boot.phases.at(-1)?.phase ?? "—"}</td>
                      <td>{boot.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}
      <section aria-labelledby="alerts-title">
        <h2 id="alerts-title">Alerts</h2>
        <ErrorNote error={alerts.error} />
        {alerts.data === undefined && !alerts.loading && !alerts.error && (
          <p class="muted">This server does not report alerts.</p>
        )}
        {alerts.data && alerts.data.alerts.length === 0 && <p class="muted">No alerts.</p>}
        {alerts.data && alerts.data.alerts.length > 0 && (
          <ul class="alerts" data-testid="alerts">
            {alerts.data.alerts.map((alert, index) => (
              <li key={index} class={`alert severity-${alert.severity ?? alert.labels?.severity ?? "warning"}`}>
                <strong>{alert.name ?? alert.alertname ?? alert.labels?.alertname ?? "alert"}</strong>{" "}
                {alert.summary ?? alert.annotations?.summary ?? ""}
                {(alert.nodeId ?? alert.labels?.node) && (
                  <>
                    {" "}
                    <a href={href(`/nodes/${alert.nodeId ?? alert.labels?.node}`)}>
                      {alert.labels?.hostname ?? alert.nodeId ?? alert.labels?.node}
                    </a>
                  </>
                )}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="health-title">
        <h2 id="health-title">Parts</h2>
        <ErrorNote error={health.error} />
        {health.data && <HealthList health={health.data} />}
      </section>
    </>
  );
}
