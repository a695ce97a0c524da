import type { Config } from "../config/schema.js";

/**
 * One part of the daemon (DHCP, TFTP, HTTP, the inventory, …) as the lifecycle sees it. The contract
 * lives at the bottom of the import graph so every part implements it without importing the
 * composition (`src/server/`) that runs them.
 *
 * Parts are started in registration order and stopped in reverse. A reload is all or nothing: the
 * daemon first asks every started part to `check` the new config, and only when none refuses does it
 * call `reload` on each (docs/LAYOUT.md, "Reload").
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Would `reload(config)` succeed? Throw an error that says why not (it is logged for the operator)
   * to refuse; change nothing either way. Called before any part applies the config.
   */
  check?(config: Config): Promise<void> | void;
  /**
   * Apply a new config that every part's `check` accepted. A throw here is a failure after the
   * point of no return for the parts already reloaded: the daemon rolls them back (see `Daemon`).
   */
  reload?(config: Config): Promise<void> | void;
  /** `ok` while the part answers; `detail` names what is wrong (for `/health`). */
  health(): ServiceHealth;
}

export interface ServiceHealth {
  ok: boolean;
  detail?: string;
}
