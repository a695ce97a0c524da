import { after, before } from "node:test";
import { openPgStore } from "../../src/store/pg-store.js";
import type { Store } from "../../src/store/store.js";
import { type PostgresCluster, startPostgres } from "../support/postgres.js";
import { storeContract } from "../support/store-contract.js";

// The Store contract (test/support/store-contract.ts) against PostgreSQL: one throwaway cluster for
// this file, a fresh database per test.
let cluster: PostgresCluster | undefined;
before(async () => {
  cluster = await startPostgres();
});
after(() => cluster?.stop());

storeContract("postgres", async (): Promise<Store> => {
  if (!cluster) throw new Error("no PostgreSQL cluster");
  return openPgStore({ kind: "postgres", url: await cluster.createDatabase(), poolSize: 4 });
});
