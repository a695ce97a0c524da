import { pino, type Logger } from "pino";

export type { Logger };

/** JSON log lines on stdout (PRODUCT.md §1: `serve` logs JSON lines). */
export function createLogger(level: string = "info"): Logger {
  return pino({ level, base: { svc: "centra-pxe" }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything, for tests and pure code paths. */
export const silentLogger: Logger = pino({ level: "silent" });
