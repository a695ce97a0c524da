/**
 * Runs the DHCP part alone, for integration tests and the benchmark: `node --import tsx
 * test/dhcp/run-server.ts CONFIG.json DB_FILE`, usually inside a network namespace. A
 * `postgres://…` URL instead of DB_FILE keeps the leases in PostgreSQL (the shared lease store). Prints
 * `ready` on stdout once listening; SIGTERM stops it cleanly (SIGKILL is what the crash test sends).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { configSchema, normalizeConfig, type ConfigInput } from "../../src/config/schema.js";
import { cachedBootloaders } from "../../src/boot/bootloaders.js";
import { httpBootBase } from "../../src/boot/firmware.js";
import { createDhcpService } from "../../src/dhcp/index.js";
import { createLogger } from "../../src/log.js";
import { createPgLeaseStore } from "../../src/store/leases-pg.js";
import { createSqliteLeaseStore } from "../../src/store/leases-sqlite.js";
import { openPgStore } from "../../src/store/pg-store.js";

const [configFile, dbFile] = process.argv.slice(2);
if (!configFile || !dbFile) {
  process.stderr.write("usage: run-server.ts CONFIG.json DB_FILE\n");
  process.exit(2);
}
const input = JSON.parse(readFileSync(configFile, "utf8")) as ConfigInput;
const config = normalizeConfig(configSchema.parse(input) as Parameters<typeof normalizeConfig>[0]);
const logger = createLogger(process.env.DHCP_LOG_LEVEL ?? "warn");
const shared = /^postgres(ql)?:\/\//.test(dbFile) ? await openPgStore({ url: dbFile, poolSize: 4 }) : undefined;
const db = shared ? undefined : new Database(dbFile);
db?.pragma("journal_mode = WAL");
db?.pragma("synchronous = FULL");
const leases = shared ? createPgLeaseStore(shared) : createSqliteLeaseStore(db!);
const service = createDhcpService({
  config,
  logger,
  leases,
  bootloaders: cachedBootloaders(() => join(config.stateDir, "ipxe")),
  bootBaseUrl: (c) => httpBootBase(c.serverAddress, c.http.port),
  observer: (seen) => {
    if (process.env.DHCP_PRINT_SEEN) process.stdout.write(`seen ${JSON.stringify(seen)}\n`);
  },
});
await service.start();
process.stdout.write("ready\n");

const shutdown = async () => {
  await service.stop();
  const c = service.counters;
  process.stdout.write(`counters ${JSON.stringify(c)}\n`);
  await leases.close?.();
  db?.close();
  await shared?.close();
  process.exit(0);
};
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
process.on("SIGHUP", () => {
  const next = normalizeConfig(
    configSchema.parse(JSON.parse(readFileSync(configFile, "utf8"))) as Parameters<typeof normalizeConfig>[0],
  );
  void Promise.resolve(service.reload?.(next)).then(() => process.stdout.write("reloaded\n"));
});
