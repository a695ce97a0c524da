import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { createMetricsPlugin } from "../../src/metrics/metrics.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import { createTimeline, type TimelinePart } from "../../src/timeline/service.js";
import { repo } from "../support/daemon.js";
import { requireBinaries } from "../support/netns.js";
import { type RunningPeer, startPrometheus } from "../support/prometheus.js";

/**
 * /metrics as a real Prometheus sees it: Debian's `prometheus` scrapes the HTTP part on loopback
 * (`up == 1` through its query API, and the boot metrics arrive), and `promtool check metrics`
 * finds nothing to say about the exposition. The boot that fills the boot metrics is a real HTTP
 * walk of iPXE's paths; its DHCP and TFTP steps are reported the way those parts report them.
 */

const MAC = "52:54:00:8e:00:01";
const RULES = join(repo, "contrib/prometheus/centra-pxe-rules.yml");
const stateDir = mkdtempSync(join(tmpdir(), "metrics-prom-"));
let store: SqliteStore;
let provisioning: ProvisioningPart;
let timeline: TimelinePart;
let http: HttpService;
let base: string;
let prometheus: RunningPeer | undefined;

before(async () => {
  mkdirSync(join(stateDir, "ipxe"));
  writeFileSync(join(stateDir, "ipxe", "undionly.kpxe"), "fake BIOS iPXE");
  mkdirSync(join(stateDir, "images", "nixos", "24.11"), { recursive: true });
  writeFileSync(join(stateDir, "images", "nixos", "24.11", "kernel"), Buffer.alloc(200_000, 1));
  writeFileSync(join(stateDir, "images", "nixos", "24.11", "initrd"), Buffer.alloc(100_000, 2));
  symlinkSync("24.11", join(stateDir, "images", "nixos", "current"));
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 127.0.0.1
dhcp: { mode: off }
http: { port: 0, bindAddress: 127.0.0.1 }
nodes:
  "${MAC}": { profile: worker, hostname: worker-8e }
`);
  store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  provisioning = createProvisioning({ config, store, logger: silentLogger });
  await provisioning.service.start();
  timeline = createTimeline({ config, store, logger: silentLogger, onEvent: provisioning.onEvent });
  await timeline.service.start();
  const metrics = createMetricsPlugin({
    health: () => ({ http: { ok: true } }),
    store,
    timeline,
    sightings: provisioning.sightingStats,
    http: () => http.stats(),
  });
  http = createHttpService({
    config,
    logger: silentLogger,
    resolver: provisioning.resolver,
    extraPlugins: [metrics],
    observer: timeline.observer,
  });
  await http.start();
  base = `http://127.0.0.1:${http.address()!.port}`;
});

after(async () => {
  await prometheus?.stop();
  await http?.stop();
  await timeline?.service.stop();
  await provisioning?.service.stop();
  await store?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

/** One boot: DHCP and TFTP as those parts report them, then iPXE's HTTP walk for real. */
async function boot(): Promise<void> {
  const now = Date.now();
  timeline.observer({
    source: "dhcp",
    at: now,
    mac: MAC,
    message: "DISCOVER",
    reply: "OFFER",
    address: "127.0.0.1",
    bootClient: true,
    firmware: "bios",
    arch: 0,
  });
  timeline.observer({
    source: "dhcp",
    at: now,
    mac: MAC,
    message: "REQUEST",
    reply: "ACK",
    address: "127.0.0.1",
    bootClient: true,
  });
  timeline.observer({
    source: "tftp",
    at: now,
    client: "127.0.0.1",
    file: "undionly.kpxe",
    outcome: "completed",
    bytes: 14,
    size: 14,
    ms: 3,
    retransmissions: 0,
  });
  const script = await (
    await fetch(`${base}/boot/ipxe/machine.ipxe?mac=${MAC.replace(/:/g, "-")}&platform=pcbios`)
  ).text();
  for (const url of [/^kernel (\S+)/m.exec(script)?.[1], /^initrd --name initrd (\S+)/m.exec(script)?.[1]]) {
    assert.ok(url, script);
    await (await fetch(url)).arrayBuffer();
  }
}

async function query(expression: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const response = await fetch(`${prometheus!.url}/api/v1/query?query=${encodeURIComponent(expression)}`);
  const body = (await response.json()) as {
    status: string;
    data: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  assert.equal(body.status, "success", JSON.stringify(body));
  return body.data.result;
}

test("promtool check metrics finds nothing wrong with /metrics, boot metrics included", async (t) => {
  if (!requireBinaries(t, "promtool")) return;
  await boot();
  const text = await (await fetch(`${base}/metrics`)).text();
  assert.match(
    text,
    /^centra_pxe_boot_downloads_total\{protocol="http",kind="kernel",profile="worker",outcome="complete"\} 1$/m,
  );
  assert.match(
    text,
    /^centra_pxe_boot_download_bytes_total\{protocol="http",kind="kernel",profile="worker"\} 200000$/m,
  );
  assert.match(
    text,
    /^centra_pxe_boot_downloads_total\{protocol="tftp",kind="bootloader",profile="unknown",outcome="complete"\} 1$/m,
  );
  assert.match(text, /^centra_pxe_boots_total\{profile="worker",verdict="booted"\} 1$/m);
  assert.match(text, /^centra_pxe_boot_phase_seconds_count\{phase="kernel"\} 1$/m);
  assert.match(text, /^centra_pxe_boot_download_seconds_bucket\{le="\+Inf",protocol="http",kind="initrd"\} 1$/m);
  const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  assert.equal(`${check.stdout}${check.stderr}`.trim(), "", "no lint remarks");
});

test("a real Prometheus scrapes /metrics: up == 1 and the boot metrics arrive", { timeout: 120_000 }, async (t) => {
  if (!requireBinaries(t, "prometheus")) return;
  prometheus = await startPrometheus([new URL(base).host], readFileSync(RULES, "utf8"));
  const deadline = Date.now() + 60_000;
  let up: Awaited<ReturnType<typeof query>> = [];
  while (Date.now() < deadline) {
    up = await query("up");
    if (up[0]?.value[1] === "1") break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.equal(up[0]?.value[1], "1", `up: ${JSON.stringify(up)}\n${prometheus.log().slice(-1500)}`);
  const boots = await query('centra_pxe_boots_total{verdict="booted"}');
  assert.equal(boots[0]?.metric.profile, "worker");
  assert.equal(boots[0]?.value[1], "1");
});

test("every query of contrib/grafana/centra-pxe.json parses in Prometheus and names metrics /metrics has", async (t) => {
  if (!prometheus) return t.skip("needs the Prometheus of the test before");
  const dashboard = JSON.parse(readFileSync(join(repo, "contrib/grafana/centra-pxe.json"), "utf8")) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const exposed = new Set(
    [...(await (await fetch(`${base}/metrics`)).text()).matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(([, name, type]) =>
      type === "histogram" ? [`${name}_bucket`, `${name}_count`, `${name}_sum`] : [name!],
    ),
  );
  let queries = 0;
  for (const panel of dashboard.panels)
    for (const { expr } of panel.targets) {
      const promql = expr.replaceAll("$__rate_interval", "1m").replaceAll("$profile", ".*");
      await query(promql); // asserts status success: the expression parses and runs
      queries++;
      for (const [name] of promql.matchAll(/\bcentra_pxe_[a-z_]+/g))
        assert.ok(exposed.has(name), `${panel.title}: ${name} is not on /metrics`);
    }
  assert.ok(queries >= 10);
});

test("contrib/prometheus/centra-pxe-rules.yml: promtool accepts it, Prometheus evaluates every rule, its metrics exist", {
  timeout: 60_000,
}, async (t) => {
  if (!requireBinaries(t, "promtool")) return;
  const check = spawnSync("promtool", ["check", "rules", RULES], { encoding: "utf8" });
  assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /SUCCESS: \d+ rules found/);
  const exposed = await (await fetch(`${base}/metrics`)).text();
  for (const [name] of readFileSync(RULES, "utf8").matchAll(/\bcentra_pxe_[a-z_]+/g))
    assert.match(exposed, new RegExp(`^# TYPE ${name} `, "m"), `${name} is not on /metrics`);
  if (!prometheus) return t.skip("needs the Prometheus of the test before");
  // Loaded and evaluated without error (health "ok" once each group ran).
  const deadline = Date.now() + 30_000;
  let rules: { name: string; health: string; lastError?: string }[] = [];
  while (Date.now() < deadline) {
    const body = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    rules = body.data.groups.flatMap((g) => g.rules);
    if (rules.length > 0 && rules.every((r) => r.health === "ok")) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.ok(rules.length >= 5, JSON.stringify(rules));
  for (const rule of rules) assert.equal(rule.health, "ok", `${rule.name}: ${rule.lastError}`);
});
