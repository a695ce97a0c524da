import { join } from "node:path";
import { createApiPlugin } from "../../src/api/plugin.js";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning } from "../../src/provisioning/index.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";

export interface ApiServer {
  /** The loopback port HTTP listens on. */
  port: number;
  stop(): Promise<void>;
}

/**
 * The provisioning part and the REST API over a store in `stateDir`, served on a free loopback
 * port in this process (no DHCP, no TFTP): what the CLI tests talk to, as `serve` composes it.
 */
export async function startApiServer(stateDir: string): Promise<ApiServer> {
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 127.0.0.1
http: { port: 0, bindAddress: 127.0.0.1 }
dhcp: { mode: off }
`);
  const store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  const part = createProvisioning({ config, store, logger: silentLogger });
  await part.service.start();
  const api = createApiPlugin({
    inventory: part.inventory,
    lifecycle: part.lifecycle,
    power: part.power,
    onEvent: part.onEvent,
    store,
    logger: silentLogger,
  });
  const http = createHttpService({ config, logger: silentLogger, resolver: part.resolver, extraPlugins: [api] });
  await http.start();
  return {
    port: http.address()!.port,
    async stop() {
      await http.stop();
      await part.service.stop();
      await store.close();
    },
  };
}
