import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import { silentLogger } from "../log.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import { InventoryCore } from "./core.js";
import { Sightings } from "./sightings.js";

test("the per-MAC memory of sightings stays bounded when a flood invents more MACs than it holds", async () => {
  const store = openSqliteStore(":memory:");
  try {
    // A budget wide enough to let the whole flood through: the bound must hold on its own.
    const config = parseConfig("provisioning: { sightingsPerSecond: 100000, sightingBurst: 100000 }\n");
    const clock = { now: new Date("2026-11-29T18:00:00.000Z") };
    const core = new InventoryCore({ store, config, logger: silentLogger, now: () => clock.now });
    const sightings = new Sightings(core, { batchMs: 1, maxRememberedMacs: 100 });
    const written: Promise<void>[] = [];
    for (let i = 0; i < 500; i++) {
      // All within a second, so none is stale enough to be swept: only the cap frees room.
      clock.now = new Date(clock.now.getTime() + 1);
      written.push(
        sightings.report({
          mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
          via: "dhcp",
        }),
      );
    }
    await sightings.flush();
    await Promise.all(written);
    const stats = sightings.stats();
    assert.equal(stats.recorded, 500, "every sighting was written");
    assert.ok(stats.remembered <= 100, `remembers ${stats.remembered} MACs`);
  } finally {
    store.close();
  }
});
