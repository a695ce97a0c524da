import type { Config } from "../config/schema.js";
import { databaseFile } from "../files/state-dir.js";
import { createPgLeaseStore } from "./leases-pg.js";
import { createSqliteLeaseStore } from "./leases-sqlite.js";
import { openPgStore, type PgStore } from "./pg-store.js";
import { type OpenStoreOptions, openSqliteStore, type SqliteStore } from "./sqlite-store.js";
import type { LeaseStore } from "../contracts/lease-store.js";

/** The store `storage:` names: the embedded file in stateDir, or the shared PostgreSQL database. */
export type ConfiguredStore = SqliteStore | PgStore;

/**
 * Open the configured store. SQLite: `stateDir/centra-pxe.db` with `options` as `openSqliteStore`
 * takes them. PostgreSQL: migrated unless `readonly` (a read never changes the schema; a database
 * behind this program is then refused with what to do).
 */
export async function openConfiguredStore(config: Config, options: OpenStoreOptions = {}): Promise<ConfiguredStore> {
  if (config.storage.kind === "postgres") return openPgStore(config.storage, { migrate: options.readonly !== true });
  return openSqliteStore(databaseFile(config.stateDir), options);
}

/** The DHCP leases kept beside the store: the SQLite file's own table, or the shared one. */
export function leaseStoreFor(store: ConfiguredStore): LeaseStore {
  return store.kind === "postgres" ? createPgLeaseStore(store) : createSqliteLeaseStore(store.db);
}
