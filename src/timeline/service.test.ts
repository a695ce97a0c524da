import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import { silentLogger } from "../log.js";
import type { NodeEvent, NodeRecord } from "../store/store.js";
import { createTimeline, lifecycleStep } from "./service.js";

const MAC = "52:54:00:5e:00:01";
const node = { id: "n-1", macs: [MAC], source: "config", labels: {}, state: "provisioning" } as unknown as NodeRecord;
const store = { nodes: { get: async () => node, list: async () => [node] } } as never;

function timelineIn(dir: string, listeners: Set<(e: NodeEvent) => void>) {
  return createTimeline({
    config: parseConfig(`serverAddress: 10.0.100.10\nstateDir: ${dir}\n`),
    store,
    logger: silentLogger,
    onEvent: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    file: join(dir, "timeline.json"),
  });
}

test("the timeline survives a restart through its file; lifecycle events land in the machine's attempt", async () => {
  const dir = mkdtempSync(join(tmpdir(), "timeline-file-"));
  try {
    const listeners = new Set<(e: NodeEvent) => void>();
    const first = timelineIn(dir, listeners);
    await first.service.start();
    first.observer({
      source: "dhcp",
      at: Date.now(),
      mac: MAC,
      message: "DISCOVER",
      reply: "OFFER",
      address: "10.0.100.50",
      bootClient: true,
    });
    const event: NodeEvent = {
      seq: 1,
      nodeId: "n-1",
      kind: "transition",
      at: new Date().toISOString(),
      details: { action: "timeout" },
    };
    for (const listener of listeners) listener(event);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await first.service.stop();
    const saved = JSON.parse(readFileSync(join(dir, "timeline.json"), "utf8")) as { attempts: unknown[] };
    assert.equal(saved.attempts.length, 1);

    const second = timelineIn(dir, new Set());
    await second.service.start();
    const [attempt] = second.boots([MAC]);
    assert.equal(attempt?.verdict, "timed-out", attempt?.reason);
    assert.deepEqual(first.boots([MAC]), second.boots([MAC]));
    await second.service.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a corrupt timeline file is set aside, not fatal", async () => {
  const dir = mkdtempSync(join(tmpdir(), "timeline-file-"));
  try {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(dir, "timeline.json"), "{ not json");
    const timeline = timelineIn(dir, new Set());
    await timeline.service.start();
    assert.deepEqual(timeline.boots([MAC]), []);
    await timeline.service.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("lifecycle events a timeline shows, and the ones it does not", () => {
  const at = "2026-11-29T20:00:00.000Z";
  const event = (kind: string, details: Record<string, unknown> = {}): NodeEvent => ({
    seq: 1,
    nodeId: "n",
    kind,
    at,
    details,
  });
  assert.equal(lifecycleStep(event("install-boot"))?.kind, "install-boot");
  assert.deepEqual(lifecycleStep(event("transition", { action: "callback-failed", message: "disk" })), {
    source: "lifecycle",
    at: Date.parse(at),
    kind: "callback-failed",
    message: "disk",
  });
  assert.equal(lifecycleStep(event("transition", { action: "callback-succeeded" }))?.kind, "callback-succeeded");
  assert.equal(lifecycleStep(event("transition", { action: "timeout" }))?.kind, "timeout");
  assert.equal(lifecycleStep(event("transition", { action: "provision" })), undefined);
  assert.equal(lifecycleStep(event("discovered")), undefined);
});
