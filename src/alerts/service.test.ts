import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import type { ServiceHealth } from "../contracts/service.js";
import { silentLogger } from "../log.js";
import type { NodeEvent } from "../store/store.js";
import { createTimeline } from "../timeline/service.js";
import { alertmanagerBody, signBody } from "./delivery.js";
import { backoffMs, CutTransfers } from "./rules.js";
import { createAlerts } from "./service.js";

const T0 = Date.parse("2026-11-29T20:00:00Z");

function harness(yaml = "") {
  let t = T0;
  const health: Record<string, ServiceHealth> = { http: { ok: true }, tftp: { ok: true } };
  const config = parseConfig(`serverAddress: 10.0.100.10\nstateDir: /nonexistent\n${yaml}`);
  const store = { nodes: { get: async () => undefined, list: async () => [] } } as never;
  const listeners = new Set<(e: NodeEvent) => void>();
  const onEvent = (listener: (e: NodeEvent) => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  const now = () => t;
  const timeline = createTimeline({ config, store, logger: silentLogger, onEvent, now });
  const alerts = createAlerts({ config, logger: silentLogger, store, onEvent, timeline, health: () => health, now });
  return {
    health,
    timeline,
    alerts,
    advance: (ms: number) => (t += ms),
    now,
    async start() {
      await timeline.service.start();
      await alerts.service.start();
    },
    async stop() {
      await alerts.service.stop();
      await timeline.service.stop();
    },
  };
}

test("a part down past partDown.after fires once, and resolves when it serves again", async () => {
  const h = harness("alerts: { partDown: { after: 30s } }");
  await h.start();
  try {
    h.health.tftp = { ok: false, detail: "tftp is not listening" };
    h.alerts.evaluate();
    h.advance(20_000);
    h.alerts.evaluate();
    assert.equal(h.alerts.active().length, 0, "not before 30 s");
    h.advance(15_000);
    h.alerts.evaluate();
    h.alerts.evaluate();
    assert.deepEqual(
      h.alerts.active().map((a) => [a.labels.alertname, a.labels.part, a.annotations.description]),
      [["CentraPxePartDown", "tftp", "tftp is not listening"]],
    );
    assert.equal(h.alerts.active()[0]?.startsAt, T0, "since it went down");
    h.health.tftp = { ok: true };
    h.alerts.evaluate();
    assert.equal(h.alerts.active().length, 0);
  } finally {
    await h.stop();
  }
});

test("a boot loop: the Nth DISCOVER within the window fires; a quiet window resolves it", async () => {
  const h = harness("alerts: { bootLoop: { attempts: 3, window: 5m } }");
  await h.start();
  const mac = "52:54:00:10:00:01";
  try {
    for (let boot = 0; boot < 3; boot++) {
      // Each boot gets as far as the kernel (then the machine resets): a new attempt each time.
      h.timeline.observer({
        source: "dhcp",
        at: h.now(),
        mac,
        message: "DISCOVER",
        reply: "OFFER",
        address: "10.0.100.101",
        bootClient: true,
        userClass: "iPXE",
      });
      h.timeline.observer({
        source: "http",
        scheme: "http",
        at: h.now(),
        client: "10.0.100.101",
        path: "/boot/images/nixos/1/kernel",
        kind: "kernel",
        method: "GET",
        status: 200,
        bytes: 5,
        size: 5,
        ms: 1,
        complete: true,
      });
      h.advance(30_000);
    }
    assert.deepEqual(
      h.alerts.active().map((a) => [a.labels.alertname, a.labels.mac]),
      [["CentraPxeBootLoop", mac]],
    );
    h.advance(6 * 60_000);
    h.alerts.evaluate();
    assert.equal(h.alerts.active().length, 0);
  } finally {
    await h.stop();
  }
});

test("a machine that boots to its disk again and again is not looping", async () => {
  const h = harness("alerts: { bootLoop: { attempts: 3, window: 5m } }");
  await h.start();
  const mac = "52:54:00:10:00:03";
  const verdicts: string[] = [];
  h.timeline.onVerdict((_attempt, verdict) => verdicts.push(verdict.verdict));
  try {
    for (let boot = 0; boot < 6; boot++) {
      h.timeline.observer({
        source: "dhcp",
        at: h.now(),
        mac,
        message: "DISCOVER",
        reply: "OFFER",
        address: "10.0.100.103",
        bootClient: true,
        userClass: "iPXE",
      });
      h.timeline.observer({
        source: "http",
        scheme: "http",
        at: h.now(),
        client: "10.0.100.103",
        path: "/boot/ipxe/machine.ipxe",
        kind: "machine-script",
        method: "GET",
        status: 200,
        bytes: 50,
        size: 50,
        ms: 1,
        complete: true,
        mac,
        decision: { boot: "localdisk" },
      });
      h.advance(20_000);
    }
    assert.ok(!verdicts.includes("boot-loop"), `never judged a loop, not even as a boot began: ${verdicts.join(", ")}`);
    assert.deepEqual(h.alerts.active(), []);
    assert.deepEqual(
      h.timeline.boots([mac]).map((b) => b.verdict),
      Array(5).fill("local-disk"),
    );
  } finally {
    await h.stop();
  }
});

test("transfers cut short: the count-th within the window fires; the tsize probe (no data) never counts", async () => {
  const h = harness("alerts: { abortedTransfers: { count: 3, window: 10m } }");
  await h.start();
  const mac = "52:54:00:10:00:02";
  const client = "10.0.100.102";
  try {
    h.timeline.observer({
      source: "dhcp",
      at: h.now(),
      mac,
      message: "REQUEST",
      reply: "ACK",
      address: client,
      bootClient: true,
    });
    const tftp = (bytes: number) =>
      h.timeline.observer({
        source: "tftp",
        at: h.now(),
        client,
        file: "undionly.kpxe",
        outcome: "aborted",
        bytes,
        ms: 10,
        retransmissions: 0,
        reason: "client abort",
      });
    for (let i = 0; i < 5; i++) tftp(0);
    assert.equal(h.alerts.active().length, 0, "PXE ROMs abort a tsize probe on every boot");
    tftp(1024);
    tftp(2048);
    h.timeline.observer({
      source: "http",
      scheme: "http",
      at: h.now(),
      client,
      path: "/boot/images/nixos/1/initrd",
      kind: "initrd",
      method: "GET",
      status: 200,
      bytes: 100,
      size: 9000,
      ms: 10,
      complete: false,
    });
    assert.deepEqual(
      h.alerts.active().map((a) => a.labels.alertname),
      ["CentraPxeAbortedTransfers"],
    );
    assert.match(h.alerts.active()[0]!.annotations.description, /initrd cut short/);
    h.advance(11 * 60_000);
    h.alerts.evaluate();
    assert.equal(h.alerts.active().length, 0);
  } finally {
    await h.stop();
  }
});

test("the cut-transfer window is bounded in machines and in times per machine", () => {
  const cuts = new CutTransfers(100);
  for (let i = 0; i < 10_000; i++) cuts.note(`m${i}`, T0, 60_000, 3);
  for (let i = 0; i < 50; i++) cuts.note("loud", T0 + i, 60_000, 3);
  assert.equal(cuts.count("loud", T0 + 60, 60_000), 3);
  assert.equal(cuts.count("m0", T0, 60_000), 0, "the oldest machines were dropped");
});

test("signature, backoff and Alertmanager's body", () => {
  const body = '{"version":1}';
  assert.equal(
    signBody("s3cret", 1700000000, body),
    `sha256=${createHmac("sha256", "s3cret").update(`1700000000.${body}`).digest("hex")}`,
  );
  assert.deepEqual([0, 1, 2, 3, 10].map(backoffMs), [1000, 2000, 4000, 8000, 60000]);
  const alert = {
    key: "k",
    labels: { alertname: "CentraPxePartDown" as const, severity: "critical" as const, part: "tftp" },
    annotations: { summary: "s", description: "d" },
    startsAt: T0,
  };
  const [firing] = JSON.parse(alertmanagerBody([alert], T0 + 1000, 60_000)) as { endsAt: string }[];
  assert.equal(firing?.endsAt, new Date(T0 + 1000 + 240_000).toISOString(), "resolves itself if we stop re-sending");
  const [resolved] = JSON.parse(alertmanagerBody([{ ...alert, endsAt: T0 + 5 }], T0 + 1000, 60_000)) as {
    endsAt: string;
  }[];
  assert.equal(resolved?.endsAt, new Date(T0 + 5).toISOString());
});
