import assert from "node:assert/strict";
import { test } from "node:test";
import type { NodeRecord } from "../store/store.js";
import { MAX_IN_PROGRESS, pageNodes, summarizeFleet } from "./node-page.js";

const node = (i: number, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  id: `n-${String(i).padStart(12, "0")}`,
  macs: [`52:54:00:00:00:${i.toString(16).padStart(2, "0")}`],
  hostname: `host-${i}`,
  labels: {},
  state: "ready",
  source: "api",
  stateChangedAt: `2026-11-29T10:00:${String(59 - (i % 60)).padStart(2, "0")}Z`,
  createdAt: "2026-11-29T09:00:00Z",
  ...extra,
});

test("pageNodes: search by MAC in either spelling, hostname or id; total before the page; no limit is everything", () => {
  const nodes = Array.from({ length: 30 }, (_, i) => node(i));
  assert.deepEqual(
    pageNodes(nodes, { search: "52-54-00-00-00-0A", offset: 0 }).nodes.map((n) => n.hostname),
    ["host-10"],
  );
  assert.equal(pageNodes(nodes, { search: "HOST-2", offset: 0, limit: 5 }).total, 11, "host-2, host-20 … host-29");
  assert.equal(pageNodes(nodes, { search: "n-000000000007", offset: 0 }).nodes[0]?.hostname, "host-7");
  const page = pageNodes(nodes, { offset: 25, limit: 10 });
  assert.deepEqual(
    { count: page.nodes.length, total: page.total, offset: page.offset, limit: page.limit },
    { count: 5, total: 30, offset: 25, limit: 10 },
  );
  assert.equal(pageNodes(nodes, { offset: 0 }).nodes.length, 30);
  assert.equal(pageNodes(nodes, { offset: 0, limit: 0 }).nodes.length, 0, "limit 0: the count alone");
  assert.equal(pageNodes(nodes, { search: "  ", offset: 0 }).total, 30, "a blank search matches all");
});

test("summarizeFleet: every state counted (zeros too), profiles, the longest-running installs first and capped", () => {
  const nodes = [
    ...Array.from({ length: MAX_IN_PROGRESS + 5 }, (_, i) => node(i, { state: "provisioning", profile: "worker" })),
    node(900, { state: "failed" }),
  ];
  const summary = summarizeFleet(nodes);
  assert.equal(summary.total, MAX_IN_PROGRESS + 6);
  assert.deepEqual(summary.byState, {
    discovered: 0,
    ready: 0,
    provisioning: MAX_IN_PROGRESS + 5,
    provisioned: 0,
    failed: 1,
    retired: 0,
  });
  assert.deepEqual(summary.byProfile, { worker: MAX_IN_PROGRESS + 5, "": 1 });
  assert.equal(summary.provisioningTotal, MAX_IN_PROGRESS + 5);
  assert.equal(summary.provisioning.length, MAX_IN_PROGRESS);
  const started = summary.provisioning.map((n) => n.stateChangedAt);
  assert.deepEqual(started, [...started].sort(), "oldest first");
});
