import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { loadConfigFile } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { ConfigError, formatConfigProblem } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { openSqliteStore, type SqliteStore } from "../store/sqlite-store.js";
import { Daemon } from "./daemon.js";
import { createServices } from "./parts.js";

export interface RunningServer {
  daemon: Daemon;
  store: SqliteStore;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * `centra-pxe serve`: open the store, start every part in one lifecycle, and return a handle.
 * The caller owns signals (see `serveForever`); tests call this directly.
 */
export async function startServer(config: Config, logger: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  await mkdir(config.stateDir, { recursive: true });
  const store = openSqliteStore(join(config.stateDir, "centra-pxe.db"));
  const daemon = new Daemon(config, logger);
  const parts = createServices(config, { logger, store, daemon });
  for (const service of parts.services) daemon.register(service);
  try {
    await daemon.start();
  } catch (error) {
    await parts.close();
    await store.close();
    throw error;
  }
  return {
    daemon,
    store,
    logger,
    async stop() {
      await daemon.stop();
      await parts.close();
      await store.close();
    },
  };
}

/**
 * Run until SIGTERM/SIGINT. SIGHUP re-reads the config file: a bad one is logged with every
 * problem and refused, and the old config keeps serving.
 */
export async function serveForever(config: Config, file: string | undefined): Promise<void> {
  const logger = createLogger(config.logLevel);
  const server = await startServer(config, logger);
  logger.info({ config: file ?? "<embedded defaults>", interface: config.interface, serverAddress: config.serverAddress }, "serving");

  let reloading = Promise.resolve();
  process.on("SIGHUP", () => {
    reloading = reloading.then(async () => {
      if (!file) {
        logger.warn("SIGHUP: running on embedded defaults, nothing to reload");
        return;
      }
      let next: Config;
      try {
        next = loadConfigFile(file);
      } catch (error) {
        const problems = error instanceof ConfigError ? error.problems.map(formatConfigProblem) : [String(error)];
        logger.error({ problems }, "SIGHUP: new config refused; the old one keeps serving");
        return;
      }
      try {
        await server.daemon.reload(next);
        logger.info({ config: file }, "SIGHUP: config reloaded");
      } catch (error) {
        logger.error({ err: error }, "SIGHUP: reload failed; the old config keeps serving");
      }
    });
  });

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "stopping");
      void reloading.then(() => server.stop()).then(resolve, (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        resolve();
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
