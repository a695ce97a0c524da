import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createAlerts, type AlertsPart } from "../../src/alerts/service.js";
import { parseConfig } from "../../src/config/load.js";
import { createHttpApp } from "../../src/http/app.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import { createTimeline, type TimelinePart } from "../../src/timeline/service.js";
import { requireBinaries } from "../support/netns.js";
import { type RunningPeer, startAlertmanager } from "../support/prometheus.js";

/**
 * A node that times out reaches a real Alertmanager (Debian `prometheus-alertmanager`, its
 * `/api/v2/alerts`) and a webhook that checks the HMAC signature the way the README tells a
 * receiver to, and that refuses the first delivery (the alert must come again, after a backoff).
 */

const MAC = "52:54:00:a1:00:01";
const SECRET = "a-webhook-secret-of-32-characters";
const dir = mkdtempSync(join(tmpdir(), "alerts-am-"));
let alertmanager: RunningPeer | undefined;
let webhook: Server;
const received: { body: string; verified: boolean; status: number }[] = [];
let store: SqliteStore;
let provisioning: ProvisioningPart;
let timeline: TimelinePart;
let alerts: AlertsPart;

/** The README's verification: HMAC-SHA256 over "<timestamp>.<raw body>", compared in constant time. */
function verify(rawBody: string, timestamp: string | undefined, signature: string | undefined): boolean {
  if (!timestamp || !signature) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = `sha256=${createHmac("sha256", SECRET).update(`${timestamp}.${rawBody}`).digest("hex")}`;
  return expected.length === signature.length && timingSafeEqual(Buffer.from(expected), Buffer.from(signature));
}

before(async () => {
  webhook = createServer((request, response) => {
    let body = "";
    request.on("data", (d: Buffer) => (body += d.toString()));
    request.on("end", () => {
      const verified = verify(
        body,
        request.headers["x-centra-timestamp"] as string | undefined,
        request.headers["x-centra-signature"] as string | undefined,
      );
      // The first delivery is refused: the sender must retry.
      const status = received.length === 0 ? 503 : verified ? 204 : 401;
      received.push({ body, verified, status });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  await alerts?.service.stop();
  await timeline?.service.stop();
  await provisioning?.service.stop();
  await store?.close();
  await alertmanager?.stop();
  await new Promise((resolve) => webhook.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

test("a node that times out: its alert reaches Alertmanager's API and a signed webhook, retried", {
  timeout: 120_000,
}, async (t) => {
  if (!requireBinaries(t, "prometheus-alertmanager")) return;
  alertmanager = await startAlertmanager();
  mkdirSync(join(dir, "images", "nixos", "1"), { recursive: true });
  writeFileSync(join(dir, "images", "nixos", "1", "kernel"), "k");
  writeFileSync(join(dir, "images", "nixos", "1", "initrd"), "i");
  symlinkSync("1", join(dir, "images", "nixos", "current"));
  writeFileSync(join(dir, "webhook.secret"), `${SECRET}\n`);
  const hookUrl = `http://127.0.0.1:${(webhook.address() as { port: number }).port}/hook`;
  const config = parseConfig(`
stateDir: ${dir}
serverAddress: 127.0.0.1
dhcp: { mode: off }
provisioning: { timeout: 2s }
alerts:
  webhooks: [{ url: "${hookUrl}", secretFile: ${join(dir, "webhook.secret")} }]
  alertmanager: { url: "${alertmanager.url}" }
nodes:
  "${MAC}": { profile: worker, hostname: worker-a1 }
`);
  store = openSqliteStore(join(dir, "centra-pxe.db"));
  provisioning = createProvisioning({
    config,
    store,
    logger: silentLogger,
    sweepIntervalMs: 250,
    // In-process, the machine's requests come from 127.0.0.1: that is its address here.
    addressOf: () => "127.0.0.1",
  });
  await provisioning.service.start();
  timeline = createTimeline({ config, store, logger: silentLogger, onEvent: provisioning.onEvent });
  await timeline.service.start();
  alerts = createAlerts({
    config,
    logger: silentLogger,
    store,
    onEvent: provisioning.onEvent,
    timeline,
    health: () => ({ http: { ok: true } }),
    checkMs: 200,
    backoff: () => 300,
  });
  await alerts.service.start();
  const app = await createHttpApp({
    config,
    logger: silentLogger,
    resolver: provisioning.resolver,
    health: () => ({}),
    observer: timeline.observer,
  });
  t.after(() => app.close());

  await provisioning.lifecycle.provision("worker-a1", "test");
  const script = await app.inject({
    url: `/boot/ipxe/machine.ipxe?mac=${MAC.replace(/:/g, "-")}&platform=pcbios`,
    headers: { host: "127.0.0.1" },
  });
  assert.match(script.body, /centra\.token=/, "an install boot: its deadline runs from now");

  // The installer never calls back: 2 s later the sweep fails the node, and the alert goes out.
  const deadline = Date.now() + 60_000;
  let found: { labels: Record<string, string>; status: { state: string } } | undefined;
  while (Date.now() < deadline && !found) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const response = await fetch(
      `${alertmanager.url}/api/v2/alerts?filter=${encodeURIComponent('alertname="CentraPxeProvisioningFailed"')}`,
    );
    const list = (await response.json()) as { labels: Record<string, string>; status: { state: string } }[];
    found = list.find((a) => a.labels.hostname === "worker-a1");
  }
  assert.ok(found, `no alert in Alertmanager; deliveries ${JSON.stringify(alerts.deliveries())}`);
  assert.equal(found.labels.reason, "timeout");
  assert.equal(found.labels.mac, MAC);
  assert.equal(found.labels.severity, "critical");
  assert.equal(found.status.state, "active");
  assert.equal((await provisioning.inventory.getNode("worker-a1")).state, "failed");

  // The webhook: refused once, then delivered again, signed.
  while (Date.now() < deadline && !received.some((r) => r.status === 204))
    await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(received.length >= 2, `webhook deliveries: ${JSON.stringify(received)}`);
  assert.equal(received[0]!.status, 503);
  const delivered = received.find((r) => r.status === 204)!;
  assert.ok(delivered.verified);
  const payload = JSON.parse(delivered.body) as { alerts: { status: string; labels: Record<string, string> }[] };
  assert.equal(payload.alerts[0]?.status, "firing");
  assert.equal(payload.alerts[0]?.labels.alertname, "CentraPxeProvisioningFailed");
  // A body changed in transit fails the check.
  assert.equal(
    verify(delivered.body.replace("worker-a1", "worker-a2"), String(Math.floor(Date.now() / 1000)), "sha256=00"),
    false,
  );
  assert.deepEqual(alerts.firing().CentraPxeProvisioningFailed, 1);

  // The boot's timeline says where it stopped.
  const [attempt] = timeline.boots([MAC]);
  assert.equal(attempt?.verdict, "timed-out", attempt?.reason);

  // Reprovisioning resolves it: Alertmanager is told (endsAt now), the webhook too.
  await provisioning.lifecycle.provision("worker-a1", "test");
  while (Date.now() < deadline && !received.some((r) => r.body.includes('"status":"resolved"')))
    await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(received.some((r) => r.verified && r.body.includes('"status":"resolved"')));
  assert.equal(alerts.active().length, 0);
});
