import { createApiPlugin } from "../api/plugin.js";
import { createDhcpService } from "../dhcp/index.js";
import { createHttpService } from "../http/server.js";
import { createMetricsPlugin } from "../metrics/metrics.js";
import { createProvisioning } from "../provisioning/index.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { authenticateApiToken } from "../provisioning/tokens.js";
import { boundLeaseLookup, createSqliteLeaseStore } from "../store/leases-sqlite.js";
import type { SqliteStore } from "../store/sqlite-store.js";
import { createTftpService } from "../tftp/index.js";
import type { Daemon } from "./daemon.js";
import type { Service } from "./service.js";

export interface PartContext {
  logger: Logger;
  store: SqliteStore;
  daemon: Daemon;
}

/**
 * The parts `serve` runs, in start order: the inventory first (it loads the config's nodes), then
 * HTTP and TFTP, and DHCP last, so no machine is pointed at a bootloader before the servers that
 * hand it out are up. Stopping goes the other way: DHCP falls silent first.
 */
export function createServices(config: Config, { logger, store, daemon }: PartContext): { services: Service[]; close(): Promise<void> } {
  // `dhcp` is created after provisioning (its observer and lookupNode come from there), so the
  // provisioning part asks through this late binding.
  let addressOf: ((mac: string) => string | undefined) | undefined;
  const provisioning = createProvisioning({ config, store, logger, addressOf: (mac) => addressOf?.(mac) });
  const tftp = config.tftp.enabled ? createTftpService({ config, logger }) : undefined;
  const leases = config.dhcp.mode !== "off" ? createSqliteLeaseStore(store.db) : undefined;
  const dhcp =
    leases
      ? createDhcpService({
          config,
          logger,
          leases,
          observer: provisioning.dhcpObserver,
          lookupNode: provisioning.lookupNode,
        })
      : undefined;
  addressOf = machineAddressOf(config, dhcp, store, provisioning.lookupNode);
  const health = () => daemon.health();
  const metrics = createMetricsPlugin({
    dhcp: () => dhcp?.counters,
    tftp: () => tftp?.stats(),
    sightings: provisioning.sightingStats,
    store,
    health,
    // `metrics.requireToken` as in force now (a reload may close or open /metrics).
    authorize: async (request) => {
      if (!provisioning.inventory.config.metrics.requireToken) return undefined;
      const result = await authenticateApiToken(store, request.headers.authorization);
      return result.ok ? undefined : { status: result.status, message: result.message };
    },
  });
  const api = createApiPlugin({ inventory: provisioning.inventory, lifecycle: provisioning.lifecycle, onEvent: provisioning.onEvent, store, logger });
  const http = createHttpService({
    config,
    logger,
    resolver: provisioning.resolver,
    health,
    extraPlugins: [metrics, api],
  });
  return {
    services: [provisioning.service, http, ...(tftp ? [tftp] : []), ...(dhcp ? [dhcp] : [])],
    // After the parts stopped: the lease writer thread has nothing left to commit.
    close: async () => leases?.close?.(),
  };
}

/**
 * Where a MAC's requests come from, as DHCP knows it: the DHCP part's own `addressOf` (the lease
 * or reservation in server mode, the address requested in the broadcast REQUEST in proxy mode).
 * Until every DHCP build has it, server mode falls back to the bound lease in the shared database
 * and the inventory's reservation; proxy mode without it knows nothing. dhcp off: nothing.
 */
function machineAddressOf(
  config: Config,
  dhcp: object | undefined,
  store: SqliteStore,
  reservation: (mac: string) => { ipAddress?: string } | undefined,
): ((mac: string) => string | undefined) | undefined {
  if (!dhcp) return undefined;
  const own = (dhcp as { addressOf?: (mac: string) => string | undefined }).addressOf;
  if (typeof own === "function") return (mac) => own.call(dhcp, mac);
  if (config.dhcp.mode !== "server") return undefined;
  const bound = boundLeaseLookup(store.db);
  return (mac) => reservation(mac)?.ipAddress ?? config.nodes[mac]?.ipAddress ?? bound(mac, Date.now());
}
