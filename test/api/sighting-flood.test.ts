import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning } from "../../src/provisioning/index.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";

/**
 * A discovery flood against the inventory as the daemon runs it: a store file on disk with
 * `synchronous = FULL`, 300 new MACs reported the way the DHCP part reports them. Each used to be
 * its own commit (an fsync) run back to back on the event loop; the figures are printed so the
 * change can be measured (issue 10 item 4: 368 ms before).
 */

const MACS = 300;
const macOf = (i: number) =>
  `52:54:02:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

async function flood(
  burst: number,
): Promise<{ maxMs: number; recorded: number; dropped: number; nodes: number; commits: number }> {
  const dir = mkdtempSync(join(tmpdir(), "flood-"));
  const store = openSqliteStore(join(dir, "centra-pxe.db"));
  // Count the store's sighting commits (each one transaction, one fsync) on the real store.
  let commits = 0;
  const recordSightings = store.recordSightings.bind(store);
  store.recordSightings = (batch) => {
    commits++;
    return recordSightings(batch);
  };
  const config = parseConfig(
    `serverAddress: 10.0.100.10\nstateDir: ${dir}\nprovisioning: { sightingBurst: ${burst} }\n`,
  );
  const part = createProvisioning({ config, store, logger: silentLogger });
  await part.service.start();
  try {
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    // The histogram needs a few samples before a stall right after enable() shows.
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < MACS; i++) part.dhcpObserver({ mac: macOf(i), firmware: "bios", via: "dhcp" });
    const deadline = Date.now() + 30_000;
    while (part.sightingStats().recorded + part.sightingStats().dropped < MACS && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    // One more turn so a last long task (if any) is in the histogram.
    await new Promise((r) => setTimeout(r, 20));
    delay.disable();
    const { recorded, dropped } = part.sightingStats();
    return {
      maxMs: delay.max / 1e6,
      recorded,
      dropped,
      commits,
      nodes: (await part.inventory.listNodes({ state: "discovered" })).length,
    };
  } finally {
    await part.service.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(`${MACS} new MACs do not hold the event loop: one commit per batch`, async () => {
  const result = await flood(1_000);
  console.log(
    `# ${MACS} sightings, file store, synchronous=FULL: ${result.commits} commits, event loop max delay ${result.maxMs.toFixed(1)} ms; recorded ${result.recorded}`,
  );
  assert.equal(result.recorded, MACS);
  assert.equal(result.nodes, MACS);
  // The behaviour behind the figure: sightings are committed in batches, not one fsync each (one
  // commit per sighting held the loop 368 ms here). The delay itself is printed, not asserted: on
  // a loaded CI box any process can be descheduled that long.
  assert.ok(result.commits <= MACS / 10, `${result.commits} commits for ${MACS} sightings`);
});

test("beyond the budget, sightings are dropped and counted, never queued without bound", async () => {
  const result = await flood(100);
  console.log(`# budget burst 100: recorded ${result.recorded}, dropped ${result.dropped}`);
  assert.ok(result.dropped >= MACS - 100 - 20, `dropped ${result.dropped}`);
  assert.equal(result.recorded + result.dropped, MACS);
  assert.equal(result.nodes, result.recorded);
});
