import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { DhcpCounters } from "../dhcp/server.js";
import type { HttpStats } from "../http/server.js";
import type { Store } from "../store/store.js";
import { NODE_STATES } from "../lifecycle/lifecycle.js";
import type { TftpStats } from "../tftp/server.js";
import type { ServiceHealth } from "../contracts/service.js";
import { FAILED_VERDICTS, phasesOf, SUCCESSES } from "../timeline/attempt.js";
import type { TimelinePart } from "../timeline/service.js";
import type { AlertsPart } from "../alerts/service.js";

/**
 * Prometheus metrics at `/metrics`. The protocol parts keep plain counters of their own (no
 * metrics library in a protocol core); this module reads them at scrape time, so a scrape costs
 * nothing between scrapes and the hot paths stay free of it.
 */
export interface MetricSources {
  dhcp?: () => DhcpCounters | undefined;
  tftp?: () => TftpStats | undefined;
  http?: () => HttpStats | undefined;
  store?: Store;
  health: () => Record<string, ServiceHealth>;
  /** The inventory's sighting counts (recorded, dropped by the budget). */
  sightings?: () => { recorded: number; dropped: number };
  /** The boot timeline: downloads per kind and profile, boots and their verdicts, phase durations. */
  timeline?: Pick<TimelinePart, "timeline" | "onVerdict">;
  /** Alerts firing now and their deliveries (src/alerts). */
  alerts?: Pick<AlertsPart, "firing" | "deliveries">;
  /** A refusal when `/metrics` is closed (`metrics.requireToken`) and the request has no admin token; undefined lets it through. */
  authorize?: (request: FastifyRequest) => Promise<{ status: number; message: string } | undefined>;
}

/** A counter whose value is read from a part's own running total at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const value = read();
      this.reset();
      if (value !== undefined) this.inc(value);
    },
  });
}

export function createMetricsPlugin(sources: MetricSources): FastifyPluginAsync {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "centra_pxe_process_" });
  // prom-client names three gauges `…_total`, which `promtool check metrics` rejects (a `_total`
  // suffix promises a counter): the exposition stays lint-clean without them.
  for (const name of ["active_handles_total", "active_requests_total", "active_resources_total"])
    registry.removeSingleMetric(`centra_pxe_process_nodejs_${name}`);

  new Gauge({
    name: "centra_pxe_part_up",
    help: "1 while a part of the daemon (dhcp, tftp, http, provisioning) is serving",
    labelNames: ["part"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [part, health] of Object.entries(sources.health())) this.set({ part }, health.ok ? 1 : 0);
    },
  });

  mirroredCounter(
    registry,
    "centra_pxe_sightings_recorded_total",
    "machine sightings (DHCP, iPXE) written to the inventory",
    () => sources.sightings?.().recorded,
  );
  mirroredCounter(
    registry,
    "centra_pxe_sightings_dropped_total",
    "machine sightings dropped: the new-machine budget was spent (a flood)",
    () => sources.sightings?.().dropped,
  );

  const dhcp: [keyof DhcpCounters, string][] = [
    ["received", "DHCP datagrams received on the configured interface"],
    ["malformed", "DHCP datagrams dropped as malformed (truncated, bad cookie, overruns)"],
    ["dropped", "DHCP requests dropped (rate limit, not ours)"],
    ["ignored", "DHCP requests deliberately not answered"],
    ["replies", "DHCP replies sent"],
    ["commits", "lease batches made durable"],
    ["committedLeases", "lease changes made durable"],
    ["sendErrors", "DHCP replies the socket refused"],
    ["untrustedRelay", "relayed DHCP packets dropped: giaddr not in dhcp.relays"],
    ["newClientsDropped", "DHCP packets from new MACs dropped over dhcp.budgets.newClients"],
    ["sightingsDropped", "DHCP sightings not passed to the inventory over dhcp.budgets.sightings"],
    ["discoversShed", "new DHCP DISCOVERs dropped past saturation, so clients mid-exchange are answered first"],
  ];
  for (const [key, help] of dhcp) {
    mirroredCounter(registry, `centra_pxe_dhcp_${snake(key)}_total`, help, () => sources.dhcp?.()?.[key]);
  }

  const tftpCounters: [keyof TftpStats, string][] = [
    ["transfersStarted", "TFTP transfers started"],
    ["transfersCompleted", "TFTP transfers completed"],
    ["transfersFailed", "TFTP transfers given up (timeouts, lost clients)"],
    ["transfersAborted", "TFTP transfers ended by the client (PXE ROMs probing tsize do this)"],
    ["requestsRefused", "TFTP requests refused (writes, escapes, missing files, limits)"],
    ["requestsRateLimitedClient", "TFTP requests dropped: source over its rate or its unacknowledged transfers"],
    ["requestsRateLimitedServer", "TFTP requests dropped: server over its request rate"],
    ["transfersEvicted", "TFTP transfers never acknowledged, evicted for newer requests"],
    ["junkDropped", "TFTP datagrams dropped as junk"],
    ["bytesSent", "TFTP payload bytes sent"],
    ["retransmissions", "TFTP blocks sent again"],
  ];
  for (const [key, help] of tftpCounters) {
    mirroredCounter(registry, `centra_pxe_tftp_${snake(key)}_total`, help, () => sources.tftp?.()?.[key]);
  }
  new Gauge({
    name: "centra_pxe_tftp_transfers_active",
    help: "TFTP transfers in progress",
    registers: [registry],
    collect() {
      this.set(sources.tftp?.()?.transfersActive ?? 0);
    },
  });

  new Counter({
    name: "centra_pxe_http_connections_refused_total",
    help: "HTTP connections closed as they arrived, by the cap that refused them (per_address, total)",
    labelNames: ["cap"],
    registers: [registry],
    collect() {
      const refused = sources.http?.()?.refusedConnections;
      this.reset();
      if (refused) for (const [cap, value] of Object.entries(refused)) this.inc({ cap: snake(cap) }, value);
    },
  });
  new Gauge({
    name: "centra_pxe_http_connections_open",
    help: "HTTP connections open",
    registers: [registry],
    collect() {
      this.set(sources.http?.()?.openConnections ?? 0);
    },
  });
  new Gauge({
    name: "centra_pxe_http_download_buffers_in_use",
    help: "download read buffers of the shared pool in use",
    registers: [registry],
    collect() {
      this.set(sources.http?.()?.downloadBuffers.inUse ?? 0);
    },
  });

  if (sources.store) {
    const store = sources.store;
    new Gauge({
      name: "centra_pxe_nodes",
      help: "nodes in the inventory by lifecycle state",
      labelNames: ["state"],
      registers: [registry],
      async collect() {
        const counts = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
        for (const node of await store.nodes.list()) counts.set(node.state, (counts.get(node.state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
  }

  if (sources.timeline) registerBootMetrics(registry, sources.timeline);
  new Gauge({
    name: "centra_pxe_alerts_firing",
    help: "alerts firing now by alertname (CentraPxeProvisioningFailed, CentraPxeBootLoop, CentraPxeAbortedTransfers, CentraPxePartDown)",
    labelNames: ["alertname"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [alertname, count] of Object.entries(sources.alerts?.firing() ?? {})) this.set({ alertname }, count);
    },
  });
  new Counter({
    name: "centra_pxe_alert_deliveries_total",
    help: "alert deliveries to webhooks and Alertmanager by outcome (delivered, retried, failed: given up or dropped)",
    labelNames: ["outcome"],
    registers: [registry],
    collect() {
      this.reset();
      const stats = sources.alerts?.deliveries();
      if (!stats) return;
      this.inc({ outcome: "delivered" }, stats.delivered);
      this.inc({ outcome: "retried" }, stats.retried);
      this.inc({ outcome: "failed" }, stats.failed);
    },
  });

  const requests = new Counter({
    name: "centra_pxe_http_requests_total",
    help: "HTTP requests by kind and status",
    labelNames: ["kind", "status"],
    registers: [registry],
  });
  const bytes = new Counter({
    name: "centra_pxe_http_response_bytes_total",
    help: "HTTP body bytes announced (Content-Length) by kind",
    labelNames: ["kind"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "centra_pxe_http_response_seconds",
    help: "time to the end of the response, by kind",
    labelNames: ["kind"],
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60],
    registers: [registry],
  });

  const plugin: FastifyPluginAsync = async (app) => {
    app.addHook("onResponse", async (request, reply) => {
      const kind = kindOf(request.url);
      requests.inc({ kind, status: String(reply.statusCode) });
      const length = Number(reply.getHeader("content-length"));
      if (request.method !== "HEAD" && Number.isFinite(length)) bytes.inc({ kind }, length);
      latency.observe({ kind }, reply.elapsedTime / 1000);
    });
    app.get("/metrics", async (request, reply) => {
      const refusal = await sources.authorize?.(request);
      if (refusal)
        return reply
          .code(refusal.status)
          .header("www-authenticate", 'Bearer realm="centra-pxe"')
          .send({ error: "UNAUTHENTICATED", message: refusal.message });
      reply.header("content-type", registry.contentType);
      return registry.metrics();
    });
  };
  // Like fastify-plugin: the hook must see every route of the app, not only this plugin's.
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;
  return plugin;
}

/** A small fixed set of label values, never the raw URL (MACs and paths would explode the series). */
function kindOf(url: string): string {
  if (url.startsWith("/boot/ipxe/") && (url.includes(".ipxe") || url.includes("machine"))) return "script";
  if (url.startsWith("/boot/ipxe/")) return "bootloader";
  if (url.startsWith("/boot/")) return "image";
  if (url.startsWith("/api/")) return "api";
  if (url.startsWith("/health")) return "health";
  if (url.startsWith("/metrics")) return "metrics";
  return "other";
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * The seed's "boot file download counts, bandwidth, response times, count boots per profile": counted
 * as the timeline hears of each step and judges each attempt. Labels are small fixed sets (file
 * kinds, verdicts, phases) and the config's profiles (`unknown` for a machine whose per-machine
 * script named none yet: a first boot's bootloader, a stranger), never a MAC or a path.
 */
function registerBootMetrics(registry: Registry, source: Pick<TimelinePart, "timeline" | "onVerdict">): void {
  const downloads = new Counter({
    name: "centra_pxe_boot_downloads_total",
    help: "boot files served by protocol, kind (bootloader, entry-script, machine-script, kernel, initrd, image-file), profile and outcome (complete, cut, refused)",
    labelNames: ["protocol", "kind", "profile", "outcome"],
    registers: [registry],
  });
  const downloadBytes = new Counter({
    name: "centra_pxe_boot_download_bytes_total",
    help: "bytes of boot files sent, by protocol, kind and profile",
    labelNames: ["protocol", "kind", "profile"],
    registers: [registry],
  });
  const downloadSeconds = new Histogram({
    name: "centra_pxe_boot_download_seconds",
    help: "time to serve a boot file, by protocol and kind",
    labelNames: ["protocol", "kind"],
    buckets: [0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const boots = new Counter({
    name: "centra_pxe_boots_total",
    help: "boot attempts judged, by profile and verdict (installed, booted, local-disk, stuck-after-kernel, tftp-aborted, …)",
    labelNames: ["profile", "verdict"],
    registers: [registry],
  });
  const failed = new Counter({
    name: "centra_pxe_boots_failed_total",
    help: "boot attempts that ended badly, by profile (every verdict but installed, booted, local-disk, menu, refused)",
    labelNames: ["profile"],
    registers: [registry],
  });
  const phases = new Histogram({
    name: "centra_pxe_boot_phase_seconds",
    help: "how long each phase of a judged boot took (dhcp, tftp, scripts, kernel, initrd, install)",
    labelNames: ["phase"],
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const loops = new Counter({
    name: "centra_pxe_boot_loops_total",
    help: "boot attempts judged a boot loop (alerts.bootLoop attempts within its window), by profile",
    labelNames: ["profile"],
    registers: [registry],
  });
  new Gauge({
    name: "centra_pxe_boots_in_progress",
    help: "machines whose newest boot attempt is still in progress",
    registers: [registry],
    collect() {
      let count = 0;
      for (const { attempt } of source.timeline.latestAttempts()) if (attempt.settled === undefined) count++;
      this.set(count);
    },
  });
  new Gauge({
    name: "centra_pxe_timeline_machines",
    help: "machines the boot timeline tracks now (capped by timeline.machines + timeline.strangers)",
    registers: [registry],
    collect() {
      this.set(source.timeline.size);
    },
  });
  const counters = source.timeline.counters;
  mirroredCounter(
    registry,
    "centra_pxe_timeline_machines_evicted_total",
    "machines dropped from the boot timeline to stay within its caps",
    () => counters.machinesEvicted,
  );
  mirroredCounter(
    registry,
    "centra_pxe_timeline_unattributed_total",
    "TFTP and HTTP requests from an address no DHCP exchange tied to a MAC",
    () => counters.unattributed,
  );

  source.timeline.onStep((attempt, step) => {
    if (step.source !== "tftp" && step.source !== "http") return;
    const profile = attempt.profile ?? "unknown";
    const kind = step.source === "tftp" ? "bootloader" : step.kind;
    const outcome =
      step.source === "tftp"
        ? step.outcome === "completed"
          ? "complete"
          : step.outcome === "refused"
            ? "refused"
            : "cut"
        : step.status >= 400
          ? "refused"
          : step.complete
            ? "complete"
            : "cut";
    downloads.inc({ protocol: step.source, kind, profile, outcome });
    if (step.bytes > 0) downloadBytes.inc({ protocol: step.source, kind, profile }, step.bytes);
    downloadSeconds.observe({ protocol: step.source, kind }, step.ms / 1000);
  });
  source.onVerdict((attempt, verdict, previous) => {
    const profile = attempt.profile ?? "unknown";
    if (verdict.verdict === "boot-loop" && previous?.verdict !== "boot-loop") loops.inc({ profile });
    if (!verdict.final || previous?.final) return;
    boots.inc({ profile, verdict: verdict.verdict });
    if (FAILED_VERDICTS.has(verdict.verdict)) failed.inc({ profile });
    if (SUCCESSES.has(verdict.verdict) || FAILED_VERDICTS.has(verdict.verdict))
      for (const phase of phasesOf(attempt, attempt.updatedAt))
        phases.observe({ phase: phase.phase }, (phase.end - phase.start) / 1000);
  });
}
