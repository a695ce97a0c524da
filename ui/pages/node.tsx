import { Fragment } from "preact";
import { useState } from "preact/hooks";
import { decideTransition, type LifecycleAction } from "../../src/lifecycle/lifecycle.js";
import { ApiError, type NodeEvent, type NodeRecord, optional } from "../api.js";
import { ConfirmDialog, ErrorNote, Loading, nodeName, PageTitle, StateBadge, Time } from "../common.js";
import { useLiveRefresh, useResource, useSession } from "../hooks.js";
import { href } from "../router.js";
import { can } from "../session.js";
import { type BootAttemptView, type BootStepView, FAILED_VERDICTS, SUCCESSES } from "../../src/timeline/attempt.js";
import { TimelineChart, type TimelineItem, type TimelineLane } from "../timeline.js";

type NodeAction = Extract<LifecycleAction, "provision" | "reprovision" | "retire" | "reactivate">;

/** A change the page asks the API for, behind a confirmation. */
interface PendingChange {
  label: string;
  explain: string;
  danger?: boolean;
  /** Under /nodes/{id}/ */
  path: string;
  body?: unknown;
}

/** Issue 13's power actions (`POST /nodes/{ref}/power`), offered when the node has a BMC. */
const POWER: PendingChange[] = [
  { label: "Power on", explain: "powers the machine on through its BMC", path: "power", body: { action: "on" } },
  {
    label: "Power off",
    explain: "cuts the machine's power through its BMC, without a shutdown",
    danger: true,
    path: "power",
    body: { action: "off" },
  },
  {
    label: "Power cycle",
    explain: "turns the machine off and on again through its BMC",
    danger: true,
    path: "power",
    body: { action: "cycle" },
  },
];

const ACTIONS: { action: NodeAction; label: string; explain: string; danger?: boolean }[] = [
  { action: "provision", label: "Provision", explain: "installs the node on its next PXE boot" },
  {
    action: "reprovision",
    label: "Reprovision",
    explain: "installs the node again on its next PXE boot, erasing what it runs now",
    danger: true,
  },
  { action: "retire", label: "Retire", explain: "never boots the node from the network again", danger: true },
  { action: "reactivate", label: "Reactivate", explain: "brings the retired node back" },
];

/** A node record with what later parts may add (issue 13's BMC and power); shown only when present. */
type NodeView = NodeRecord & {
  bmc?: Record<string, unknown>;
  power?: { state?: string; checkedAt?: string; error?: string; message?: string };
};

export function NodePage({ id }: { id: string }) {
  const { client, identity, announce } = useSession();
  const node = useResource(() => client.get<NodeView>(`/nodes/${encodeURIComponent(id)}`), [client, id]);
  const events = useResource(
    () =>
      client.get<{ events: NodeEvent[] }>(`/nodes/${encodeURIComponent(id)}/events?limit=200`).then((p) => p.events),
    [client, id],
  );
  const boots = useResource(
    () => optional<{ boots: BootAttemptView[] }>(client, `/nodes/${encodeURIComponent(id)}/boots`),
    [client, id],
  );
  const consoleLog = useResource(
    () => optional<unknown>(client, `/nodes/${encodeURIComponent(id)}/console`),
    [client, id],
  );
  const [pending, setPending] = useState<PendingChange | undefined>();
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<Error | undefined>();

  const nodeId = node.data?.id;
  useLiveRefresh(
    (event) => event.nodeId === nodeId,
    () => {
      node.reload();
      events.reload();
      boots.reload();
    },
    500,
  );

  if (node.error)
    return (
      <>
        <PageTitle>Node {id}</PageTitle>
        <ErrorNote error={node.error} />
        <p>
          <a href={href("/nodes")}>Back to the nodes</a>
        </p>
      </>
    );
  if (!node.data) return <Loading what="the node" />;
  const n = node.data;
  const offered = can(identity, "lifecycle")
    ? ACTIONS.filter(({ action }) => {
        const decision = decideTransition(n.state, action, { hasProfile: n.profile !== undefined });
        return decision.allowed && decision.to !== n.state;
      })
    : [];

  const run = async () => {
    if (!pending) return;
    setBusy(true);
    setActionError(undefined);
    try {
      const after = await client.send<Partial<NodeRecord>>(
        "POST",
        `/nodes/${encodeURIComponent(n.id)}/${pending.path}`,
        pending.body,
      );
      announce(after.state ? `${nodeName(n)} is now ${after.state}` : `${pending.label}: done`);
      setPending(undefined);
      node.reload();
      events.reload();
    } catch (error) {
      setActionError(error instanceof ApiError || error instanceof Error ? error : new Error(String(error)));
      setPending(undefined);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <PageTitle>
        {nodeName(n)} <StateBadge state={n.state} />
      </PageTitle>
      {offered.length > 0 && (
        <section aria-labelledby="actions-title" class="actions">
          <h2 id="actions-title" class="visually-hidden">
            Actions
          </h2>
          {offered.map((a) => (
            <button
              type="button"
              key={a.action}
              class={a.danger ? "danger" : "primary"}
              data-action={a.action}
              onClick={() =>
                setPending({ label: a.label, explain: a.explain, danger: a.danger ?? false, path: a.action })
              }
            >
              {a.label}…
            </button>
          ))}
        </section>
      )}
      <ErrorNote error={actionError} />
      <ConfirmDialog
        open={pending !== undefined}
        title={pending ? `${pending.label} ${nodeName(n)}?` : ""}
        confirmLabel={pending?.label ?? ""}
        danger={pending?.danger ?? false}
        busy={busy}
        onConfirm={run}
        onCancel={() => setPending(undefined)}
      >
        <p>
          {pending?.label} {pending?.explain}.
        </p>
      </ConfirmDialog>
      <section aria-labelledby="identity-title">
        <h2 id="identity-title">Identity</h2>
        <dl class="facts">
          <dt>Id</dt>
          <dd class="mono">{n.id}</dd>
          <dt>Hostname</dt>
          <dd>{n.hostname ?? "—"}</dd>
          <dt>MACs</dt>
          <dd class="mono" data-testid="node-macs">
            {n.macs.join(", ")}
          </dd>
          <dt>Address</dt>
          <dd class="mono">{n.ipAddress ?? "—"}</dd>
          <dt>Profile</dt>
          <dd>{n.profile ?? "—"}</dd>
          <dt>Image version</dt>
          <dd>{n.imageVersion ?? "current"}</dd>
          <dt>SMBIOS UUID</dt>
          <dd class="mono">{n.uuid ?? "—"}</dd>
          <dt>Serial</dt>
          <dd>{n.serial ?? "—"}</dd>
          <dt>Firmware</dt>
          <dd>{n.firmware ?? "—"}</dd>
          <dt>Labels</dt>
          <dd>
            {Object.entries(n.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(", ") || "—"}
          </dd>
          <dt>Source</dt>
          <dd>{n.source}</dd>
          <dt>State</dt>
          <dd data-testid="node-state">
            <StateBadge state={n.state} /> since <Time iso={n.stateChangedAt} />
          </dd>
          {n.provisionDeadline && (
            <>
              <dt>Install deadline</dt>
              <dd>
                <Time iso={n.provisionDeadline} />
              </dd>
            </>
          )}
          <dt>Last seen</dt>
          <dd>
            <Time iso={n.lastSeenAt} />
          </dd>
        </dl>
      </section>
      {n.bmc && (
        <section aria-labelledby="bmc-title">
          <h2 id="bmc-title">BMC and power</h2>
          <dl class="facts">
            {Object.entries(n.bmc)
              .filter(([key]) => !/password|secret|credential/i.test(key))
              .map(([key, value]) => (
                <Fragment key={key}>
                  <dt>{key}</dt>
                  <dd>{typeof value === "object" ? JSON.stringify(value) : String(value)}</dd>
                </Fragment>
              ))}
            {n.power && (
              <>
                <dt>Power</dt>
                <dd data-testid="power">
                  {n.power.state ?? "unknown"}
                  {n.power.error && ` (${n.power.error}${n.power.message ? `: ${n.power.message}` : ""})`}
                  {n.power.checkedAt && (
                    <>
                      {" "}
                      checked <Time iso={n.power.checkedAt} />
                    </>
                  )}
                </dd>
              </>
            )}
          </dl>
          {can(identity, "lifecycle") && (
            <div class="actions">
              {POWER.map((change) => (
                <button
                  type="button"
                  key={change.label}
                  class={change.danger ? "danger" : ""}
                  onClick={() => setPending(change)}
                >
                  {change.label}…
                </button>
              ))}
            </div>
          )}
        </section>
      )}
      <section aria-labelledby="timeline-title">
        <h2 id="timeline-title">Boot timeline</h2>
        <BootTimeline nodeId={n.id} boots={boots.data?.boots} events={events.data} />
      </section>
      {consoleLog.data !== undefined && (
        <section aria-labelledby="console-title">
          <h2 id="console-title">Console</h2>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling log must be reachable by keyboard to scroll it */}
          <pre class="console" tabIndex={0}>
            {consoleText(consoleLog.data)}
          </pre>
        </section>
      )}
      <section aria-labelledby="events-title">
        <h2 id="events-title">Events</h2>
        <ErrorNote error={events.error} />
        {events.data && <EventTable events={events.data} />}
      </section>
    </>
  );
}

function consoleText(value: unknown): string {
  if (typeof value === "string") return value;
  const record = (value ?? {}) as Record<string, unknown>;
  for (const key of ["text", "log", "console"]) if (typeof record[key] === "string") return record[key] as string;
  if (Array.isArray(record.lines)) return record.lines.join("\n");
  return JSON.stringify(value, null, 2);
}

function EventTable({ events }: { events: NodeEvent[] }) {
  if (events.length === 0) return <p class="muted">No events.</p>;
  return (
    <div class="table-wrap">
      <table data-testid="events-table">
        <caption class="visually-hidden">The node's events, newest first</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Event</th>
            <th scope="col">Change</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {[...events].reverse().map((event) => (
            <tr key={event.seq}>
              <td>
                <Time iso={event.at} />
              </td>
              <td>{event.kind}</td>
              <td>{event.toState ? `${event.fromState ?? "—"} → ${event.toState}` : ""}</td>
              <td class="details">{describeDetails(event.details)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function describeDetails(details: Record<string, unknown>): string {
  return Object.entries(details)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join("; ");
}

/** The timeline's own sets (what the metrics and alerts call failed), so the page agrees with them. */
function verdictTone(verdict: BootAttemptView["verdict"]): string {
  if (FAILED_VERDICTS.has(verdict)) return "verdict-failed";
  return SUCCESSES.has(verdict) ? "verdict-ok" : "verdict-open";
}

/** A step's few facts worth a label, by source (the OpenAPI `BootStep` schema). */
function stepLabel(step: BootStepView): string {
  const facts = step as unknown as Record<string, unknown>;
  const text = (key: string) => (facts[key] === undefined ? "" : String(facts[key]));
  switch (step.source) {
    case "dhcp":
      return `${text("message")}${facts.reply ? ` → ${text("reply")}` : ""}${facts.ignored ? ` (ignored: ${text("ignored")})` : ""}`;
    case "tftp":
      return `${text("file")} ${text("outcome")}, ${text("bytes")} bytes${facts.retransmissions ? `, ${text("retransmissions")} resent` : ""}`;
    case "http":
      return `${text("kind")} ${text("path")} ${text("status")}, ${text("bytes")} bytes`;
    default:
      return `${text("kind")}${facts.message ? `: ${text("message")}` : ""}`;
  }
}

function stepTone(step: BootStepView): string {
  const facts = step as unknown as Record<string, unknown>;
  const outcome = String(facts.outcome ?? facts.kind ?? "");
  if (/abort|fail|refused|rejected|timeout/.test(outcome) || (typeof facts.status === "number" && facts.status >= 400))
    return "failed";
  if (outcome === "callback-succeeded") return "ok";
  return step.source;
}

function BootTimeline(props: {
  nodeId: string;
  boots: BootAttemptView[] | undefined;
  events: NodeEvent[] | undefined;
}) {
  const { client } = useSession();
  const { boots, events } = props;
  const [chosen, setChosen] = useState<number | undefined>();
  const attempt = chosen ?? boots?.[0]?.attempt;
  const detail = useResource(
    () =>
      attempt === undefined
        ? Promise.resolve(undefined)
        : optional<BootAttemptView>(client, `/nodes/${encodeURIComponent(props.nodeId)}/boots/${attempt}`),
    [client, props.nodeId, attempt, boots],
  );
  if (boots && boots.length > 0) {
    const shown = detail.data ?? boots.find((b) => b.attempt === attempt) ?? boots[0]!;
    const lanes: TimelineLane[] = [
      {
        label: "Phases",
        items: shown.phases.map((p) => ({
          start: Date.parse(p.start),
          end: Math.max(Date.parse(p.end), Date.parse(p.start) + 1),
          label: `${p.phase} (${p.ms} ms)`,
          tone: p.phase,
        })),
      },
    ];
    const bySource = new Map<string, TimelineItem[]>();
    for (const step of shown.steps ?? []) {
      const start = Date.parse(step.at);
      const ms = (step as { ms?: number }).ms;
      const items = bySource.get(step.source) ?? [];
      items.push({
        start,
        ...(ms !== undefined && ms > 0 ? { end: start + ms } : {}),
        label: stepLabel(step),
        tone: stepTone(step),
      });
      bySource.set(step.source, items);
    }
    for (const [source, items] of bySource) lanes.push({ label: source.toUpperCase(), items });
    const all = lanes.flatMap((lane) => lane.items);
    const from = all.length ? Math.min(...all.map((i) => i.start)) : Date.parse(shown.startedAt);
    const to = all.length ? Math.max(...all.map((i) => i.end ?? i.start)) : Date.parse(shown.updatedAt);
    return (
      <>
        <p data-testid="boot-verdict">
          Attempt {shown.attempt} ({shown.mac}, started <Time iso={shown.startedAt} />
          ): <strong class={`verdict ${verdictTone(shown.verdict)}`}>{shown.verdict}</strong> — {shown.reason}
        </p>
        <TimelineChart
          id="boot"
          title={`Boot attempt ${shown.attempt}, ${shown.verdict}`}
          lanes={lanes}
          from={from}
          to={to}
        />
        {boots.length > 1 && (
          <details>
            <summary>Earlier attempts ({boots.length - 1})</summary>
            <ul class="attempts">
              {boots.map((b) => (
                <li key={b.attempt}>
                  <button type="button" onClick={() => setChosen(b.attempt)} aria-pressed={b.attempt === shown.attempt}>
                    Attempt {b.attempt}
                  </button>{" "}
                  <Time iso={b.startedAt} />: {b.verdict}
                </li>
              ))}
            </ul>
          </details>
        )}
      </>
    );
  }
  if (!events) return <Loading what="the timeline" />;
  if (events.length === 0) return <p class="muted">Nothing recorded yet.</p>;
  return (
    <>
      <p class="muted">No boot attempt recorded: the node's states and events.</p>
      <LifecycleTimeline events={events} />
    </>
  );
}

/** Without per-boot records, the node's own history: the states it held and what happened when. */
function LifecycleTimeline({ events }: { events: NodeEvent[] }) {
  const sorted = [...events].sort((a, b) => a.seq - b.seq);
  const from = Date.parse(sorted[0]!.at);
  const to = Math.max(Date.now(), Date.parse(sorted.at(-1)!.at));
  const states: TimelineItem[] = [];
  const marks: TimelineItem[] = [];
  let current: { state: string; start: number } | undefined;
  for (const event of sorted) {
    const at = Date.parse(event.at);
    if (event.toState && event.toState !== current?.state) {
      if (current) states.push({ start: current.start, end: at, label: current.state, tone: current.state });
      current = { state: event.toState, start: at };
    }
    if (event.kind !== "transition") marks.push({ start: at, label: event.kind, tone: markTone(event.kind) });
    else if (event.toState) marks.push({ start: at, label: `→ ${event.toState}`, tone: event.toState });
  }
  if (current) states.push({ start: current.start, end: to, label: current.state, tone: current.state });
  const lanes: TimelineLane[] = [
    { label: "State", items: states },
    { label: "Events", items: marks },
  ];
  return <TimelineChart id="lifecycle" title="The node's states and events" lanes={lanes} from={from} to={to} />;
}

function markTone(kind: string): string {
  if (/reject|conflict|withheld|fail/.test(kind)) return "failed";
  if (kind === "install-boot") return "transfer";
  return "event";
}
