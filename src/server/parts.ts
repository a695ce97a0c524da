import { createDashboardPlugin } from "../api/dashboard.js";
import { createApiPlugin } from "../api/plugin.js";
import { cachedBootloaders } from "../boot/bootloaders.js";
import { httpBootBase } from "../boot/firmware.js";
import { bootloaderDir, timelineFile } from "../files/state-dir.js";
import { deliveredBootloader } from "../timeline/attempt.js";
import { createTimeline } from "../timeline/service.js";
import { createAlerts } from "../alerts/service.js";
import { createGrubConfigs } from "../boot/grub.js";
import { createDhcpService } from "../dhcp/index.js";
import { createHttpService } from "../http/server.js";
import { createImageReplicaService } from "../images/peers.js";
import { createMetricsPlugin } from "../metrics/metrics.js";
import { bmcEndpoint } from "../provisioning/bmc-settings.js";
import { createConsoleRecordingService } from "../provisioning/console-recording.js";
import { createProvisioning } from "../provisioning/index.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { createAuthenticator } from "../identity/authenticate.js";
import { type ConfiguredStore, leaseStoreFor } from "../store/open.js";
import { createTftpService } from "../tftp/index.js";
import type { Daemon } from "./daemon.js";
import type { BootObserver } from "../contracts/boot-observation.js";
import type { Service } from "../contracts/service.js";

export interface PartContext {
  logger: Logger;
  store: ConfiguredStore;
  daemon: Daemon;
}

/**
 * The parts `serve` runs, in start order: the inventory first (it loads the config's nodes), then
 * HTTP and TFTP, and DHCP last, so no machine is pointed at a bootloader before the servers that
 * hand it out are up. Stopping goes the other way: DHCP falls silent first.
 */
export function createServices(
  config: Config,
  { logger, store, daemon }: PartContext,
): { services: Service[]; close(): Promise<void> } {
  // `dhcp` is created after provisioning (its observer and lookupNode come from there), so the
  // provisioning part asks through this late binding.
  let addressOf: ((mac: string) => string | undefined) | undefined;
  const provisioning = createProvisioning({ config, store, logger, addressOf: (mac) => addressOf?.(mac) });
  // Secure Boot machines' grub fetches its per-machine config by TFTP (src/boot/grub.ts), decided
  // by the same resolver (and trust rules) as machine.ipxe.
  const grubConfigs = createGrubConfigs({
    resolver: () => provisioning.resolver,
    logger: logger.child({ part: "tftp" }),
  });
  // Every part reports what it saw of a boot here; the API shows the joined attempts.
  const timeline = createTimeline({
    config,
    store,
    logger,
    onEvent: provisioning.onEvent,
    isKnown: (mac) => provisioning.lookupNode(mac) !== undefined,
    file: timelineFile(config.stateDir),
  });
  // What DHCP, TFTP and HTTP saw goes to the timeline; a machine's bootloader download also ends
  // its firmware's boot attempt (its next DISCOVER is a new one, boot-attempts.ts). TFTP and HTTP
  // know only the client's address: the timeline, fed first, names the MAC it was joined to.
  const bootObserver: BootObserver = (observation) => {
    timeline.observer(observation);
    if (observation.source === "dhcp") return;
    const file = deliveredBootloader(observation);
    if (file === undefined) return;
    const mac = timeline.timeline.macAt(observation.client);
    if (mac !== undefined) provisioning.bootloaderFetched(mac, file, observation.client);
  };
  const tftp = config.tftp.enabled
    ? createTftpService({ config, logger, observer: bootObserver, generated: grubConfigs })
    : undefined;
  const leases = config.dhcp.mode !== "off" ? leaseStoreFor(store) : undefined;
  // Several servers on one database: what another one changed reaches this one's SSE stream and
  // DHCP reservations within a NOTIFY's latency (PostgreSQL; the embedded store has no others).
  const stopFeed = store.changes?.onEvents((events) => provisioning.remoteEvents(events));
  const dhcp = leases
    ? createDhcpService({
        config,
        logger,
        leases,
        observer: provisioning.dhcpObserver,
        bootObserver,
        lookupNode: provisioning.lookupNode,
        bootChain: provisioning.bootChain,
        // DHCP answers with these but owns neither: the bootloaders are files, the URL is HTTP's.
        bootloaders: cachedBootloaders(() => bootloaderDir(config.stateDir)),
        bootBaseUrl: (c) => httpBootBase(c.serverAddress, c.http.port),
        firmwareBootBaseUrl: (c) =>
          c.http.tls?.uefiHttpBoot
            ? httpBootBase(c.serverAddress, c.http.tls.port, "https")
            : httpBootBase(c.serverAddress, c.http.port),
      })
    : undefined;
  // The machine's address: what DHCP bound or saw it ask for; in server mode also the address
  // reserved to it before its first ACK (that address is given to no one else either way).
  addressOf = dhcp
    ? (mac) =>
        dhcp.addressOf(mac) ?? (config.dhcp.mode === "server" ? provisioning.lookupNode(mac)?.ipAddress : undefined)
    : undefined;
  const health = () => daemon.health();
  // Local tokens and `auth.oidc` JWTs, for the API and /metrics alike; the OIDC settings as in force now.
  const authenticator = createAuthenticator({ store, oidc: () => provisioning.inventory.config.auth.oidc });
  const alerts = createAlerts({ config, logger, store, onEvent: provisioning.onEvent, timeline, health });
  // `http` is created below; the metrics read it only at scrape time.
  const metrics = createMetricsPlugin({
    dhcp: () => dhcp?.counters,
    tftp: () => tftp?.stats(),
    http: () => http.stats(),
    sightings: provisioning.sightingStats,
    timeline,
    alerts,
    store,
    health,
    // `metrics.requireToken` as in force now (a reload may close or open /metrics).
    authorize: async (request) => {
      if (!provisioning.inventory.config.metrics.requireToken) return undefined;
      const result = await authenticator.authenticate(request.headers.authorization);
      return result.ok ? undefined : { status: result.status, message: result.message };
    },
  });
  const api = createApiPlugin({
    inventory: provisioning.inventory,
    lifecycle: provisioning.lifecycle,
    power: provisioning.power,
    onEvent: provisioning.onEvent,
    store,
    logger,
    authenticator,
    timeline,
    alerts,
    ...(leases ? { leases: () => leases.loadLeases() } : {}),
  });
  const http = createHttpService({
    config,
    logger,
    resolver: provisioning.resolver,
    health,
    // The dashboard (/ui/) is static files only; everything it shows comes through `api`.
    extraPlugins: [metrics, api, createDashboardPlugin({ logger })],
    observer: bootObserver,
  });
  // SOL of every provisioning node with an IPMI BMC, to stateDir/consoles (issue 13).
  const consoles = createConsoleRecordingService({
    store,
    logger,
    stateDir: () => provisioning.inventory.config.stateDir,
    endpointOf: async (node) => (node.bmc ? bmcEndpoint(store, node.id, node.bmc).catch(() => undefined) : undefined),
    onEvent: provisioning.onEvent,
    sol: { ipmitool: config.bmc.ipmitool },
  });
  // Several servers on one database: each serves image files from its own stateDir, so one that
  // lacks a registered version says so in /health and copies it from a peer (images/peers.ts).
  const replicas = store.kind === "postgres" ? createImageReplicaService({ store, config, logger }) : undefined;
  return {
    services: [
      provisioning.service,
      consoles,
      ...(replicas ? [replicas] : []),
      timeline.service,
      http,
      ...(tftp ? [tftp] : []),
      ...(dhcp ? [dhcp] : []),
      alerts.service,
    ],
    // After the parts stopped: the lease writer thread has nothing left to commit.
    close: async () => {
      stopFeed?.();
      await leases?.close?.();
    },
  };
}
