import { createDhcpService } from "../dhcp/index.js";
import { createHttpService } from "../http/server.js";
import { createMetricsPlugin } from "../metrics/metrics.js";
import { createProvisioning } from "../provisioning/index.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import { createSqliteLeaseStore } from "../store/leases-sqlite.js";
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
  const provisioning = createProvisioning({ config, store, logger });
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
  const health = () => daemon.health();
  // `http` is created below; the metrics read it only at scrape time.
  const metrics = createMetricsPlugin({ dhcp: () => dhcp?.counters, tftp: () => tftp?.stats(), http: () => http.stats(), store, health });
  const http = createHttpService({
    config,
    logger,
    resolver: provisioning.resolver,
    health,
    extraPlugins: [metrics, provisioning.apiPlugin],
  });
  return {
    services: [provisioning.service, http, ...(tftp ? [tftp] : []), ...(dhcp ? [dhcp] : [])],
    // After the parts stopped: the lease writer thread has nothing left to commit.
    close: async () => leases?.close?.(),
  };
}
