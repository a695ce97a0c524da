import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { Service, ServiceHealth } from "../contracts/service.js";

/**
 * The one lifecycle every part plugs into: start in order, stop in reverse, reload all or none.
 */
export class Daemon {
  private readonly services: Service[] = [];
  private started: Service[] = [];

  constructor(
    private config: Config,
    private readonly logger: Logger,
  ) {}

  get currentConfig(): Config {
    return this.config;
  }

  register(service: Service): void {
    this.services.push(service);
  }

  async start(): Promise<void> {
    for (const service of this.services) {
      try {
        await service.start();
      } catch (error) {
        this.logger.error({ service: service.name, err: error }, "failed to start; stopping what started");
        await this.stop();
        throw error;
      }
      this.started.push(service);
      this.logger.info({ service: service.name }, "started");
    }
  }

  /** Apply a validated config to every part; a part that refuses it is logged and the rest keep going. */
  async reload(config: Config): Promise<void> {
    const failures: string[] = [];
    for (const service of this.started) {
      try {
        await service.reload?.(config);
      } catch (error) {
        failures.push(`${service.name}: ${(error as Error).message}`);
      }
    }
    if (failures.length) throw new Error(`reload refused by ${failures.join("; ")}`);
    this.config = config;
  }

  async stop(): Promise<void> {
    for (const service of [...this.started].reverse()) {
      try {
        await service.stop();
        this.logger.info({ service: service.name }, "stopped");
      } catch (error) {
        this.logger.error({ service: service.name, err: error }, "failed to stop cleanly");
      }
    }
    this.started = [];
  }

  /** Per-part health for `/health`; a registered part that has not started is not serving. */
  health(): Record<string, ServiceHealth> {
    const result: Record<string, ServiceHealth> = {};
    for (const service of this.services) {
      result[service.name] = this.started.includes(service) ? service.health() : { ok: false, detail: "not started" };
    }
    return result;
  }
}
