import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { storeContract } from "../support/store-contract.js";

// The Store contract (test/support/store-contract.ts) against the SQLite implementation; the
// PostgreSQL one gets the same call.
storeContract("sqlite", async () => openSqliteStore(":memory:"));
