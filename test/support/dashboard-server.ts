import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FastifyPluginAsync } from "fastify";
import type { Browser } from "playwright-core";
import type { LeaseRecord } from "../../src/contracts/lease-store.js";
import { createDashboardPlugin } from "../../src/api/dashboard.js";
import { createApiPlugin } from "../../src/api/plugin.js";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService } from "../../src/http/server.js";
import { addImage } from "../../src/images/images.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import { createTimeline } from "../../src/timeline/service.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import { repo } from "./daemon.js";

/** Build the dashboard bundle into `dir` (scripts/build-ui.mjs): each test its own copy, never dist/. */
export function buildDashboardInto(dir: string): void {
  execFileSync(process.execPath, [join(repo, "scripts/build-ui.mjs"), dir], { stdio: ["ignore", "pipe", "inherit"] });
}

export interface DashboardServer {
  url: string;
  /** An admin API token. */
  token: string;
  /** A viewer's token (reads only). */
  viewerToken: string;
  store: SqliteStore;
  part: ProvisioningPart;
  stop(): Promise<void>;
}

/**
 * The daemon's HTTP side as `serve` composes it (src/server/parts.ts): provisioning, the API and the
 * dashboard over a store in `stateDir`, on a free loopback port in this process; image `nixos` is
 * installed, and `seed` may fill the store before the inventory starts (10,000 nodes in one
 * transaction rather than 10,000 API calls).
 */
export async function startDashboardServer(options: {
  stateDir: string;
  uiDir: string;
  seed?: (store: SqliteStore) => void;
  extraPlugins?: FastifyPluginAsync[];
  leases?: () => Promise<LeaseRecord[]>;
}): Promise<DashboardServer> {
  const { stateDir } = options;
  mkdirSync(join(stateDir, "images"), { recursive: true });
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 127.0.0.1
http: { port: 0, bindAddress: 127.0.0.1 }
dhcp: { mode: off }
tftp: { enabled: false }
provisioning: { timeout: 10m, installTokenToAnyAddress: true }
profiles:
  worker: { image: nixos }
`);
  const store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  const files = { kernel: join(stateDir, "kernel.in"), initrd: join(stateDir, "initrd.in") };
  writeFileSync(files.kernel, Buffer.alloc(4096, 1));
  writeFileSync(files.initrd, Buffer.alloc(4096, 2));
  await addImage({ stateDir, store, name: "nixos", files, version: "24.05" });
  await addImage({ stateDir, store, name: "nixos", files, version: "24.11" });
  options.seed?.(store);
  const { token } = await createApiToken(store, "dashboard-test");
  const viewer = await createApiToken(store, "dashboard-viewer", { role: "viewer" });
  const part = createProvisioning({ config, store, logger: silentLogger });
  await part.service.start();
  const timeline = createTimeline({
    config,
    store,
    logger: silentLogger,
    onEvent: part.onEvent,
    isKnown: (mac) => part.lookupNode(mac) !== undefined,
  });
  await timeline.service.start();
  const api = createApiPlugin({
    inventory: part.inventory,
    lifecycle: part.lifecycle,
    onEvent: part.onEvent,
    store,
    logger: silentLogger,
    timeline,
    ...(options.leases ? { leases: options.leases } : {}),
  });
  const http = createHttpService({
    config,
    logger: silentLogger,
    resolver: part.resolver,
    observer: timeline.observer,
    extraPlugins: [
      api,
      createDashboardPlugin({ dir: options.uiDir, logger: silentLogger }),
      ...(options.extraPlugins ?? []),
    ],
  });
  await http.start();
  return {
    url: `http://127.0.0.1:${http.address()!.port}`,
    token,
    viewerToken: viewer.token,
    store,
    part,
    async stop() {
      await http.stop();
      await timeline.service.stop();
      await part.service.stop();
      await store.close();
    },
  };
}

/**
 * `count` nodes straight into the store in one transaction (the API would take an fsync each):
 * hostnames `node-00000`…, MACs `52:54:01:xx:xx:xx`, label `rack=r<i % 40>`, profile `worker`, and
 * the first `provisioning` of them in that state (boots in progress), the rest `ready`.
 */
export function seedNodes(store: SqliteStore, count: number, provisioning = 0): void {
  const now = new Date().toISOString();
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  store.db.transaction(() => {
    for (let i = 0; i < count; i++) {
      void store.nodes.create({
        id: `n-${i.toString(16).padStart(12, "0")}`,
        macs: [`52:54:01:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`],
        hostname: `node-${String(i).padStart(5, "0")}`,
        profile: "worker",
        labels: { rack: `r${i % 40}` },
        state: i < provisioning ? "provisioning" : "ready",
        source: "api",
        stateChangedAt: now,
        createdAt: now,
        ...(i < provisioning
          ? { provisioningId: `p-${i}`, provisionDeadline: new Date(Date.now() + 600_000).toISOString() }
          : {}),
      });
    }
  })();
}

/**
 * Open the overview in a fresh context, signed in, and return the milliseconds from navigation start
 * until it shows `total` nodes and `inProgress` boots in progress (the bench and the scale test).
 */
export async function timeOverview(browser: Browser, server: DashboardServer, total: number, inProgress: number) {
  const context = await browser.newContext();
  try {
    await context.addInitScript((token: string) => sessionStorage.setItem("centra-pxe.token", token), server.token);
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/#/`);
    const handle = await page.waitForFunction(
      ({ total, inProgress }) => {
        const count = document.querySelector('[data-state="total"]')?.textContent;
        const rows = document.querySelectorAll('[data-testid="in-progress"] tbody tr').length;
        return count === total && rows === inProgress ? performance.now() : false;
      },
      { total: total.toLocaleString("en-US"), inProgress },
      { polling: "raf", timeout: 30_000 },
    );
    return (await handle.jsonValue()) as number;
  } finally {
    await context.close();
  }
}
