import type { Config } from "../config/schema.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import { ReloadFailedError, ReloadRefusedError, type ReloadRefusal } from "../errors.js";
import type { Logger } from "../log.js";

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

  /**
   * Start every part in registration order. When `signal` aborts (SIGTERM during start-up), the
   * part being started finishes, everything started is stopped, and the abort reason is thrown.
   */
  async start(signal?: AbortSignal): Promise<void> {
    for (const service of this.services) {
      if (signal?.aborted) {
        this.logger.info({ next: service.name }, "start-up interrupted; stopping what started");
        await this.stop();
        throw signal.reason;
      }
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

  /**
   * Apply a validated config to every part, or to none. Every started part `check`s it first and
   * every refusal is collected (the operator fixes them in one pass); only when none refuses does
   * each part `reload`, in start order.
   *
   * A part can still fail to apply a config it accepted (a port taken between the check and the
   * bind). The parts that had applied it, and the failing one, are then reloaded with the old
   * config in reverse order, so the daemon stays on one config: the old one. Should that rollback
   * fail too, `ReloadFailedError.rolledBack` is false and the caller must not go on serving.
   */
  async reload(config: Config): Promise<void> {
    const parts = [...this.started];
    const refusals: ReloadRefusal[] = [];
    for (const service of parts) {
      try {
        await service.check?.(config);
      } catch (error) {
        refusals.push({ part: service.name, reason: errorMessage(error) });
      }
    }
    if (refusals.length) throw new ReloadRefusedError(refusals);

    const touched: Service[] = [];
    for (const service of parts) {
      touched.push(service);
      try {
        await service.reload?.(config);
      } catch (error) {
        const rollbackFailures = await this.rollBack(touched.reverse());
        const message = `${service.name} failed to apply the new config: ${errorMessage(error)}`;
        if (rollbackFailures.length) {
          throw new ReloadFailedError(
            service.name,
            false,
            `${message}; rolling back failed in ${rollbackFailures.join("; ")}`,
            { cause: error },
          );
        }
        throw new ReloadFailedError(service.name, true, `${message}; every part is back on the old config`, {
          cause: error,
        });
      }
    }
    this.config = config;
  }

  /** Reload `parts` with the config in force before the failed reload; returns what failed. */
  private async rollBack(parts: Service[]): Promise<string[]> {
    const failures: string[] = [];
    for (const service of parts) {
      try {
        await service.reload?.(this.config);
      } catch (error) {
        this.logger.error({ service: service.name, err: error }, "could not go back to the old config");
        failures.push(`${service.name}: ${errorMessage(error)}`);
      }
    }
    return failures;
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
