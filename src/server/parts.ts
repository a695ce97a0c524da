import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { SqliteStore } from "../store/sqlite-store.js";
import type { Daemon } from "./daemon.js";
import type { Service } from "./service.js";

export interface PartContext {
  logger: Logger;
  store: SqliteStore;
  daemon: Daemon;
}

/** The parts `serve` runs, in start order: HTTP first (health), then TFTP, then DHCP last, so no
 * machine is pointed at a bootloader before the servers that hand it out are up. */
export function createServices(config: Config, context: PartContext): Service[] {
  void config;
  void context;
  return [];
}
