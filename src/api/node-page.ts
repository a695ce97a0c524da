import { NODE_STATES, type NodeState } from "../lifecycle/lifecycle.js";
import type { NodeRecord } from "../store/store.js";

/** The largest page `GET /nodes?limit=` hands out: a dashboard page, not a dump (no limit still lists all). */
export const MAX_NODE_PAGE = 1000;

/** Nodes in provisioning listed by the fleet summary: the overview's "boots in progress". */
export const MAX_IN_PROGRESS = 200;

export interface NodePageQuery {
  /** Case-insensitive substring of a MAC, the hostname or the id (`52:54:00:ab`, `worker-1`). */
  search?: string;
  offset: number;
  /** Absent: every match (what `nodes list` and other scripts read). */
  limit?: number;
}

export interface NodePage {
  nodes: NodeRecord[];
  /** Matches before paging: what a pager needs to show "51–100 of 10,000". */
  total: number;
  offset: number;
  limit?: number;
}

/**
 * One page of the nodes the store's filter matched, searched and cut here. Filtering by state,
 * profile and label stays in the store (indexed columns); the search is a substring of three short
 * fields, cheap in memory even over 10,000 nodes, and keeps the Store interface (and its PostgreSQL
 * twin) unchanged.
 */
export function pageNodes(nodes: readonly NodeRecord[], query: NodePageQuery): NodePage {
  const needle = query.search?.trim().toLowerCase();
  const matches = needle
    ? nodes.filter(
        (node) =>
          node.id.toLowerCase().includes(needle) ||
          (node.hostname?.toLowerCase().includes(needle) ?? false) ||
          // Operators paste MACs in every spelling: 52-54-00-… (Windows), 52:54:00:… (ours).
          node.macs.some((mac) => mac.includes(needle.replaceAll("-", ":"))),
      )
    : nodes;
  const end = query.limit === undefined ? undefined : query.offset + query.limit;
  return {
    nodes: matches.slice(query.offset, end),
    total: matches.length,
    offset: query.offset,
    ...(query.limit === undefined ? {} : { limit: query.limit }),
  };
}

export interface FleetSummary {
  total: number;
  /** Every state, zero included, so a reader never has to guess a missing key. */
  byState: Record<NodeState, number>;
  /** Nodes without a profile count under "" (discovered machines). */
  byProfile: Record<string, number>;
  /** Nodes in `provisioning`, the longest-running first, at most MAX_IN_PROGRESS. */
  provisioning: NodeRecord[];
  /** How many are provisioning in all (the list may be cut). */
  provisioningTotal: number;
  /** The last live event (seq) the summary includes; set by the API, which keeps it between events. */
  asOfSeq?: number;
}

/** Counts by state and profile and the attempts under way: the fleet overview in one read. */
export function summarizeFleet(nodes: readonly NodeRecord[]): FleetSummary {
  const byState: Record<string, number> = {};
  const byProfile: Record<string, number> = {};
  for (const node of nodes) {
    byState[node.state] = (byState[node.state] ?? 0) + 1;
    const profile = node.profile ?? "";
    byProfile[profile] = (byProfile[profile] ?? 0) + 1;
  }
  return fleetSummaryOf(
    byState,
    byProfile,
    nodes.filter((node) => node.state === "provisioning"),
  );
}

/**
 * The same from counts the store made itself (`NodeRepository.countBy`) and the nodes in
 * `provisioning`: a few hundred rows read instead of the whole fleet.
 */
export function fleetSummaryOf(
  counts: Record<string, number>,
  byProfile: Record<string, number>,
  provisioning: readonly NodeRecord[],
): FleetSummary {
  const byState = Object.fromEntries(NODE_STATES.map((state) => [state, counts[state] ?? 0])) as Record<
    NodeState,
    number
  >;
  const running = [...provisioning].sort((a, b) => a.stateChangedAt.localeCompare(b.stateChangedAt));
  return {
    total: NODE_STATES.reduce((sum, state) => sum + byState[state], 0),
    byState,
    byProfile: { ...byProfile },
    provisioning: running.slice(0, MAX_IN_PROGRESS),
    provisioningTotal: running.length,
  };
}
