// The boot timeline as a picture: lanes of spans (a state held, a transfer) and instants (a DHCP ACK,
// a callback) on one time axis. An SVG drawn from data, with the same facts as a list beside it for
// screen readers (the picture is role="img" with a summary).

export interface TimelineItem {
  /** ms since the epoch */
  start: number;
  /** absent: an instant */
  end?: number;
  label: string;
  /** a CSS class suffix: a state name, `ok`, `failed`, `transfer`, … */
  tone: string;
}

export interface TimelineLane {
  label: string;
  items: TimelineItem[];
}

const WIDTH = 900;
const LANE_HEIGHT = 34;
const LEFT = 110;
const RIGHT = 16;
const TOP = 24;

export function TimelineChart(props: { id: string; title: string; lanes: TimelineLane[]; from: number; to: number }) {
  const { lanes, from } = props;
  const to = Math.max(props.to, from + 1000);
  const x = (t: number) => LEFT + ((t - from) / (to - from)) * (WIDTH - LEFT - RIGHT);
  const height = TOP + lanes.length * LANE_HEIGHT + 26;
  const ticks = Array.from({ length: 5 }, (_, i) => from + ((to - from) * i) / 4);
  const count = lanes.reduce((n, lane) => n + lane.items.length, 0);
  return (
    <figure class="timeline">
      <svg
        viewBox={`0 0 ${WIDTH} ${height}`}
        role="img"
        aria-labelledby={`${props.id}-title`}
        data-testid="timeline-svg"
        preserveAspectRatio="xMinYMin meet"
      >
        <title id={`${props.id}-title`}>
          {props.title}: {count} steps from {new Date(from).toLocaleString()} to {new Date(to).toLocaleString()}
        </title>
        {ticks.map((t, i) => (
          <g key={t} class="tick">
            <line x1={x(t)} x2={x(t)} y1={TOP - 6} y2={height - 22} />
            <text x={x(t)} y={height - 8} text-anchor={i === 0 ? "start" : i === ticks.length - 1 ? "end" : "middle"}>
              {tickLabel(t, from, to)}
            </text>
          </g>
        ))}
        {lanes.map((lane, index) => {
          const y = TOP + index * LANE_HEIGHT;
          return (
            <g key={lane.label} class="lane">
              <text x={8} y={y + LANE_HEIGHT / 2 + 4} class="lane-label">
                {lane.label}
              </text>
              <line x1={LEFT} x2={WIDTH - RIGHT} y1={y + LANE_HEIGHT / 2} y2={y + LANE_HEIGHT / 2} class="lane-axis" />
              {lane.items.map((item, i) =>
                item.end === undefined ? (
                  <circle key={i} cx={x(item.start)} cy={y + LANE_HEIGHT / 2} r={6} class={`mark tone-${item.tone}`}>
                    <title>
                      {item.label} at {new Date(item.start).toLocaleTimeString()}
                    </title>
                  </circle>
                ) : (
                  <rect
                    key={i}
                    x={x(item.start)}
                    y={y + 7}
                    width={Math.max(3, x(item.end) - x(item.start))}
                    height={LANE_HEIGHT - 14}
                    rx={3}
                    class={`span tone-${item.tone}`}
                  >
                    <title>
                      {item.label}: {new Date(item.start).toLocaleTimeString()}–
                      {new Date(item.end).toLocaleTimeString()}
                    </title>
                  </rect>
                ),
              )}
            </g>
          );
        })}
      </svg>
      <figcaption>
        <details>
          <summary>The same steps as a list</summary>
          <ol class="timeline-steps">
            {lanes
              .flatMap((lane) => lane.items.map((item) => ({ lane: lane.label, ...item })))
              .sort((a, b) => a.start - b.start)
              .map((item, i) => (
                <li key={i}>
                  <time dateTime={new Date(item.start).toISOString()}>{new Date(item.start).toLocaleTimeString()}</time>{" "}
                  {item.lane}: {item.label}
                  {item.end !== undefined && ` (${Math.round((item.end - item.start) / 100) / 10} s)`}
                </li>
              ))}
          </ol>
        </details>
      </figcaption>
    </figure>
  );
}

/** Clock time on a long axis; on a short one (a boot is seconds) the first tick's clock, then offsets. */
function tickLabel(t: number, from: number, to: number): string {
  if (to - from >= 60_000 || t === from) return new Date(t).toLocaleTimeString();
  const seconds = (t - from) / 1000;
  return `+${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)} s`;
}
