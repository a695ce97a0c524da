import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";

/**
 * One part of the daemon (DHCP, TFTP, HTTP, …) as the lifecycle sees it. Parts are started in
 * registration order and stopped in reverse; `reload` gets the new config after it validated.
 */
export interface Service {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Apply a new, already validated config. Throw to refuse it; the old one keeps serving. */
  reload?(config: Config): Promise<void> | void;
  /** `serving` while the part answers; anything else names what is wrong (for `/health`). */
  health(): ServiceHealth;
}

export interface ServiceHealth {
  ok: boolean;
  detail?: string;
}

export interface ServiceContext {
  logger: Logger;
}
