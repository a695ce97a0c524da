import { createDhcpService } from "../dhcp/index.js";
import { createHttpService } from "../http/server.js";
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
export function createServices(config: Config, { logger, store, daemon }: PartContext): Service[] {
  const provisioning = createProvisioning({ config, store, logger });
  const services: Service[] = [provisioning.service];
  services.push(
    createHttpService({
      config,
      logger,
      resolver: provisioning.resolver,
      health: () => daemon.health(),
      extraPlugins: [provisioning.apiPlugin],
    }),
  );
  if (config.tftp.enabled) services.push(createTftpService({ config, logger }));
  if (config.dhcp.mode !== "off") {
    services.push(
      createDhcpService({
        config,
        logger,
        leases: createSqliteLeaseStore(store.db),
        observer: provisioning.dhcpObserver,
        lookupNode: provisioning.lookupNode,
      }),
    );
  }
  return services;
}
