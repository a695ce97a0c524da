import { join } from "node:path";
import { createApiPlugin } from "../../src/api/plugin.js";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning } from "../../src/provisioning/index.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";

export interface ApiServer {
  /** The loopback port HTTP listens on. */
  port: number;
  /** The server's own store connection (make tokens, read the audit trail). */
  store: SqliteStore;
  stop(): Promise<void>;
}

/**
 * The provisioning part and the REST API over a store in `stateDir`, served on a free loopback
 * port in this process (no DHCP, no TFTP): what the CLI tests talk to, as `serve` composes it.
 */
export async function startApiServer(
  stateDir: string,
  options: { address?: string; extraConfig?: string } = {},
): Promise<ApiServer> {
  const address = options.address ?? "127.0.0.1";
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: ${address}
http: { port: 0, bindAddress: ${address} }
dhcp: { mode: off }
${options.extraConfig ?? ""}
`);
  const store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  const part = createProvisioning({ config, store, logger: silentLogger });
  await part.service.start();
  const api = createApiPlugin({
    inventory: part.inventory,
    lifecycle: part.lifecycle,
    onEvent: part.onEvent,
    store,
    logger: silentLogger,
  });
  const http = createHttpService({ config, logger: silentLogger, resolver: part.resolver, extraPlugins: [api] });
  await http.start();
  return {
    port: http.address()!.port,
    store,
    async stop() {
      await http.stop();
      await part.service.stop();
      await store.close();
    },
  };
}
