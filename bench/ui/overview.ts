/**
 * How fast the dashboard's overview renders with 10,000 nodes and 100 boots in progress (issue 15:
 * under 1 s on loopback in Chromium). `node --import tsx bench/ui/overview.ts [RUNS]` prints, per
 * run, the time from navigation start to the overview showing every count and all 100 boots in
 * progress (signed in, so the token check and the API reads are inside the figure), then the median.
 * Each run is a fresh browser context (no cached bundle, no warm page) after a change to a node (the
 * server's kept fleet summary is stale, so the run includes listing all 10,000 nodes).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import {
  buildDashboardInto,
  seedNodes,
  startDashboardServer,
  timeOverview,
} from "../../test/support/dashboard-server.js";

const NODES = 10_000;
const IN_PROGRESS = 100;
const runs = Number(process.argv[2] ?? 7);
const dir = mkdtempSync(join(tmpdir(), "bench-ui-"));
const uiDir = join(dir, "ui");
buildDashboardInto(uiDir);
let started = performance.now();
const server = await startDashboardServer({
  stateDir: join(dir, "state"),
  uiDir,
  seed: (store) => seedNodes(store, NODES, IN_PROGRESS),
});
process.stdout.write(
  `seeded ${NODES} nodes (${IN_PROGRESS} provisioning) in ${Math.round(performance.now() - started)} ms\n`,
);

for (let i = 0; i < 3; i++) {
  started = performance.now();
  const response = await fetch(`${server.url}/api/v1/fleet`, { headers: { authorization: `Bearer ${server.token}` } });
  await response.arrayBuffer();
  process.stdout.write(`GET /api/v1/fleet: ${Math.round(performance.now() - started)} ms\n`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
const times: number[] = [];
try {
  for (let run = 0; run < runs; run++) {
    // A change first, so the server's kept summary is stale and this load pays for a full listing.
    const change = await fetch(`${server.url}/api/v1/nodes/node-00000`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
      body: JSON.stringify({ labels: { rack: "r0", bench: String(run) } }),
    });
    if (!change.ok) throw new Error(`PATCH: ${change.status} ${await change.text()}`);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const value = await timeOverview(browser, server, NODES, IN_PROGRESS);
    times.push(value);
    process.stdout.write(`run ${run + 1}: overview rendered in ${Math.round(value)} ms\n`);
  }
} finally {
  await browser.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)]!;
process.stdout.write(
  `overview with ${NODES} nodes and ${IN_PROGRESS} boots in progress: median ${Math.round(median)} ms, worst ${Math.round(times.at(-1)!)} ms over ${runs} runs (target < 1000 ms)\n`,
);
