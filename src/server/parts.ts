import { createApiPlugin } from "../api/plugin.js";
import { cachedBootloaders } from "../boot/bootloaders.js";
import { httpBootBase } from "../boot/firmware.js";
import { bootloaderDir } from "../files/state-dir.js";
import { createDhcpService } from "../dhcp/index.js";
import { createHttpService } from "../http/server.js";
import { createImageReplicaService } from "../images/peers.js";
import { createMetricsPlugin } from "../metrics/metrics.js";
import { createProvisioning } from "../provisioning/index.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { createAuthenticator } from "../identity/authenticate.js";
import { type ConfiguredStore, leaseStoreFor } from "../store/open.js";
import { createTftpService } from "../tftp/index.js";
import type { Daemon } from "./daemon.js";
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
  const tftp = config.tftp.enabled ? createTftpService({ config, logger }) : undefined;
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
        lookupNode: provisioning.lookupNode,
        // DHCP answers with these but owns neither: the bootloaders are files, the URL is HTTP's.
        bootloaders: cachedBootloaders(() => bootloaderDir(config.stateDir)),
        bootBaseUrl: (c) => httpBootBase(c.serverAddress, c.http.port),
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
  // `http` is created below; the metrics read it only at scrape time.
  const metrics = createMetricsPlugin({
    dhcp: () => dhcp?.counters,
    tftp: () => tftp?.stats(),
    http: () => http.stats(),
    sightings: provisioning.sightingStats,
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
    onEvent: provisioning.onEvent,
    store,
    logger,
    authenticator,
  });
  const http = createHttpService({
    config,
    logger,
    resolver: provisioning.resolver,
    health,
    extraPlugins: [metrics, api],
  });
  // Several servers on one database: each serves image files from its own stateDir, so one that
  // lacks a registered version says so in /health and copies it from a peer (images/peers.ts).
  const replicas = store.kind === "postgres" ? createImageReplicaService({ store, config, logger }) : undefined;
  return {
    services: [
      provisioning.service,
      ...(replicas ? [replicas] : []),
      http,
      ...(tftp ? [tftp] : []),
      ...(dhcp ? [dhcp] : []),
    ],
    // After the parts stopped: the lease writer thread has nothing left to commit.
    close: async () => {
      stopFeed?.();
      await leases?.close?.();
    },
  };
}
