import { mkdir } from "node:fs/promises";
import { loadConfigFile } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { ConfigError, ReloadFailedError, ReloadRefusedError, formatConfigProblem } from "../errors.js";
import { createLogger, type Logger } from "../log.js";
import { type ConfiguredStore, openConfiguredStore } from "../store/open.js";
import { Daemon } from "./daemon.js";
import { createServices } from "./parts.js";
import { createReadiness, type Readiness } from "./readiness.js";
import { takeDaemonSignals, type DaemonSignal, type SignalInbox } from "./signals.js";

export interface RunningServer {
  daemon: Daemon;
  store: ConfiguredStore;
  logger: Logger;
  stop(): Promise<void>;
}

/**
 * The exit status after a stray exception or a reload that left no known config (sysexits.h
 * EX_SOFTWARE), so a service manager restarts the daemon and an operator can tell it from a bad
 * config (status 1). Restarting is safe: every lease is on disk before its ACK went out.
 */
export const EXIT_INTERNAL_ERROR = 70;

/**
 * `centra-pxe serve`: open the store, start every part in one lifecycle, and return a handle.
 * The caller owns signals (see `serveForever`); tests call this directly. When `signal` aborts
 * during start-up, what started is stopped and the abort reason is thrown.
 */
export async function startServer(
  config: Config,
  logger: Logger = createLogger(config.logLevel),
  signal?: AbortSignal,
): Promise<RunningServer> {
  await mkdir(config.stateDir, { recursive: true });
  const store = await openConfiguredStore(config);
  const daemon = new Daemon(config, logger);
  const parts = createServices(config, { logger, store, daemon });
  for (const service of parts.services) daemon.register(service);
  try {
    await daemon.start(signal);
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
 * problem and refused, and the old config keeps serving; a good one is applied by every part or
 * by none (`Daemon.reload`).
 *
 * Signals are the inbox's from the process's first instant (`holdDaemonSignals` in the CLI): a
 * SIGHUP during start-up is applied once every part is up, a SIGTERM during start-up stops what
 * started and returns. A stray exception or rejection is logged and the process exits with
 * `EXIT_INTERNAL_ERROR` rather than serve in a state nobody knows.
 *
 * Under systemd (`Type=notify`, `$NOTIFY_SOCKET`) the manager hears READY=1 once every part serves,
 * RELOADING=1 then READY=1 around each SIGHUP, and STOPPING=1 on the way out (`readiness.ts`).
 */
export async function serveForever(
  config: Config,
  file: string | undefined,
  signals: SignalInbox = takeDaemonSignals(),
  readiness?: Readiness,
): Promise<void> {
  const logger = createLogger(config.logLevel);
  const manager =
    readiness ??
    createReadiness(takeNotifySocket(), (error) => logger.warn({ err: error }, "could not notify the service manager"));
  const removeCrashHandlers = exitOnStrayError(logger);
  const stopping = new AbortController();
  let server: RunningServer | undefined;
  let fatal: ReloadFailedError | undefined;
  let startedUp!: () => void;
  // Reloads queue behind start-up and behind each other; a stop waits for the one in flight.
  let reloading = new Promise<void>((resolve) => (startedUp = resolve));

  const reload = async (): Promise<void> => {
    if (!server || stopping.signal.aborted) return;
    if (!file) {
      logger.warn("SIGHUP: running on embedded defaults, nothing to reload");
      return;
    }
    manager.reloading();
    try {
      await applyReload(server, file);
    } finally {
      // Refused or applied, the daemon serves on one known config again; after a failed rollback
      // (or a SIGTERM meanwhile) it is stopping, and STOPPING=1 says so instead.
      if (!stopping.signal.aborted) manager.ready("serving (reloaded)");
    }
  };

  const applyReload = async (running: RunningServer, file: string): Promise<void> => {
    let next: Config;
    try {
      next = loadConfigFile(file);
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems.map(formatConfigProblem) : [String(error)];
      logger.error({ problems }, "SIGHUP: new config refused; the old one keeps serving");
      return;
    }
    try {
      await running.daemon.reload(next);
      logger.info({ config: file }, "SIGHUP: config reloaded");
    } catch (error) {
      if (error instanceof ReloadRefusedError) {
        logger.error({ refusals: error.refusals }, "SIGHUP: new config refused; the old one keeps serving");
      } else if (error instanceof ReloadFailedError && error.rolledBack) {
        logger.error(
          { err: error },
          "SIGHUP: reload failed; every part went back to the old config, which keeps serving",
        );
      } else {
        fatal =
          error instanceof ReloadFailedError
            ? error
            : new ReloadFailedError("daemon", false, String(error), { cause: error });
        logger.fatal({ err: error }, "SIGHUP: reload failed and the old config could not be restored; stopping");
        stopping.abort(fatal);
      }
    }
  };

  signals.drainTo((signal: DaemonSignal) => {
    if (signal === "SIGHUP") {
      if (stopping.signal.aborted) return;
      if (!server) logger.info("SIGHUP during start-up: the config is re-read once every part is up");
      reloading = reloading.then(reload);
      return;
    }
    if (stopping.signal.aborted) return;
    logger.info({ signal }, server ? "stopping" : "stopping during start-up");
    stopping.abort(new Error(`stopped by ${signal}`));
  });

  try {
    try {
      server = await startServer(config, logger, stopping.signal);
    } catch (error) {
      if (stopping.signal.aborted && error === stopping.signal.reason) {
        logger.info("stopped before serving");
        return;
      }
      throw error;
    } finally {
      startedUp();
    }
    // A SIGTERM during the last part's start-up came too late to interrupt it: stop without serving.
    if (!stopping.signal.aborted) {
      logger.info(
        { config: file ?? "<embedded defaults>", interface: config.interface, serverAddress: config.serverAddress },
        "serving",
      );
      manager.ready(`serving on ${config.interface} (${config.serverAddress})`);
    }

    await new Promise<void>((resolve) => {
      if (stopping.signal.aborted) resolve();
      else stopping.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    manager.stopping();
    await reloading;
    try {
      await server.stop();
    } catch (error) {
      logger.error({ err: error }, "error while stopping");
    }
    if (fatal) throw Object.assign(fatal, { exitCode: EXIT_INTERNAL_ERROR });
  } finally {
    signals.close();
    removeCrashHandlers();
  }
}

/**
 * `$NOTIFY_SOCKET`, removed from the environment as sd_notify(3) does with `unset_environment`: the
 * daemon's children (the lab's QEMU, a shell) are not the service and must not speak for it.
 */
function takeNotifySocket(): string | undefined {
  const socket = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  return socket;
}

/**
 * Past this point nothing knows what state the parts are in: log the error with where it came from,
 * then exit non-zero at once (a graceful stop could hang on the very part that broke).
 */
function exitOnStrayError(logger: Logger): () => void {
  const onException = (error: Error, origin: NodeJS.UncaughtExceptionOrigin) => {
    logger.fatal({ err: error, origin }, "stray exception; exiting so the service manager starts a clean daemon");
    process.exit(EXIT_INTERNAL_ERROR);
  };
  const onRejection = (reason: unknown) => {
    logger.fatal(
      { err: reason, origin: "unhandledRejection" },
      "stray promise rejection; exiting so the service manager starts a clean daemon",
    );
    process.exit(EXIT_INTERNAL_ERROR);
  };
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}
