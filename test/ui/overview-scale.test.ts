import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type Browser, chromium } from "playwright-core";
import {
  buildDashboardInto,
  type DashboardServer,
  seedNodes,
  startDashboardServer,
  timeOverview,
} from "../support/dashboard-server.js";
import { repo } from "../support/daemon.js";
import { isCI } from "../support/netns.js";

/**
 * The overview with 10,000 nodes and 100 boots in progress, in Debian's Chromium. The figure the
 * issue asks for (under 1 s on loopback) is measured by bench/ui/overview.ts; this test keeps a
 * generous bound a loaded 2-core CI box still meets, so a page that lists every node or renders
 * the whole fleet is caught, not a slow moment.
 */

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = process.env.CENTRA_PXE_ARTIFACTS ?? join(repo, "test-artifacts/dashboard");
const NODES = 10_000;
const IN_PROGRESS = 100;
let dir: string;
let server: DashboardServer | undefined;
let browser: Browser | undefined;

before(async () => {
  if (!existsSync(CHROMIUM)) return;
  dir = mkdtempSync(join(tmpdir(), "overview-scale-"));
  buildDashboardInto(join(dir, "ui"));
  server = await startDashboardServer({
    stateDir: join(dir, "state"),
    uiDir: join(dir, "ui"),
    seed: (store) => seedNodes(store, NODES, IN_PROGRESS),
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the overview of 10,000 nodes with 100 boots in progress renders within a generous bound", {
  timeout: 180_000,
}, async (t) => {
  if (!browser || !server) {
    const why = `no Chromium at ${CHROMIUM} (scripts/bootstrap installs Debian's chromium)`;
    if (isCI) throw new Error(`${why}: required under CI`);
    t.skip(why);
    return;
  }
  const ms = await timeOverview(browser, server, NODES, IN_PROGRESS);
  process.stdout.write(`overview of ${NODES} nodes rendered in ${Math.round(ms)} ms (bench/ui/overview.ts measures)\n`);
  assert.ok(ms < 5000, `the overview took ${Math.round(ms)} ms`);
  // The nodes page is paged: 50 rows, never 10,000.
  const context = await browser.newContext();
  await context.addInitScript((token: string) => sessionStorage.setItem("centra-pxe.token", token), server.token);
  const page = await context.newPage();
  await page.goto(`${server.url}/ui/#/`);
  await page.getByTestId("in-progress").waitFor();
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, "overview-10000.png") });
  process.stdout.write(`screenshot: ${join(artifacts, "overview-10000.png")}\n`);
  await page.goto(`${server.url}/ui/#/nodes`);
  await page.getByTestId("node-count").getByText("1–50 of 10,000 nodes").waitFor();
  assert.equal(await page.getByTestId("nodes-table").locator("tbody tr").count(), 50);
  await page.getByRole("link", { name: "Next →" }).click();
  await page.getByTestId("node-count").getByText("51–100 of 10,000 nodes").waitFor();
  await page.getByTestId("nodes-table").getByText("node-00050").waitFor();
  await context.close();
});
