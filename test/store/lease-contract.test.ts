import Database from "better-sqlite3";
import { after, before } from "node:test";
import { createPgLeaseStore } from "../../src/store/leases-pg.js";
import { createSqliteLeaseStore } from "../../src/store/leases-sqlite.js";
import { openPgStore } from "../../src/store/pg-store.js";
import { leaseStoreContract } from "../support/lease-store-contract.js";
import { type PostgresCluster, startPostgres } from "../support/postgres.js";

// The LeaseStore contract on both stores: SQLite (one server, its pool the authority) and
// PostgreSQL (several servers: claims, refusals, change notices).
leaseStoreContract(
  "sqlite",
  async () => {
    const db = new Database(":memory:");
    const store = createSqliteLeaseStore(db);
    return {
      store,
      close: async () => {
        db.close();
      },
    };
  },
  { shared: false },
);

let cluster: PostgresCluster | undefined;
before(async () => {
  cluster = await startPostgres();
});
after(() => cluster?.stop());

leaseStoreContract(
  "postgres",
  async () => {
    if (!cluster) throw new Error("no PostgreSQL cluster");
    const url = await cluster.createDatabase();
    const storage = { kind: "postgres" as const, url, poolSize: 4 };
    const pg = await openPgStore(storage);
    const others: { close(): Promise<void> }[] = [];
    return {
      store: createPgLeaseStore(pg),
      other: async () => {
        const second = await openPgStore(storage);
        others.push(second);
        return { ...createPgLeaseStore(second), close: () => second.close() };
      },
      close: async () => {
        for (const o of others) await o.close().catch(() => undefined);
        await pg.close();
      },
    };
  },
  { shared: true },
);
