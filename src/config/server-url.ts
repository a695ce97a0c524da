import { httpOrigin } from "./primitives.js";
import type { Config } from "./schema.js";

/**
 * Where a config's HTTP part can be reached from this host: its bind address (serverAddress unless
 * the file names another), or serverAddress when it binds every address; the port only when not 80.
 * The CLI's client commands and `doctor` find the server this way from `--config`.
 */
export function serverHttpUrl(config: Config): string {
  const host = config.http.bindAddress === "0.0.0.0" ? config.serverAddress : config.http.bindAddress;
  return httpOrigin(host, config.http.port);
}
