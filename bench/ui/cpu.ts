/**
 * What open dashboards cost the server during a boot storm (issue 15: under 5 % of its CPU).
 * `node --import tsx bench/ui/cpu.ts [SECONDS] [DASHBOARDS] [RATE]`: the API and dashboard over
 * 10,000 nodes in this process; a child process plays the storm (iPXE asking for machine scripts,
 * half for new MACs, half for known nodes, RATE a second); the server's CPU time (this process's) is
 * measured over the same window with no dashboard open, then with DASHBOARDS overviews open in
 * Chromium (its own processes).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { buildDashboardInto, seedNodes, startDashboardServer } from "../../test/support/dashboard-server.js";

const seconds = Number(process.argv[2] ?? 20);
const dashboards = Number(process.argv[3] ?? 3);
const rate = Number(process.argv[4] ?? 100);
const dir = mkdtempSync(join(tmpdir(), "bench-ui-cpu-"));
buildDashboardInto(join(dir, "ui"));
const server = await startDashboardServer({
  stateDir: join(dir, "state"),
  uiDir: join(dir, "ui"),
  seed: (store) => seedNodes(store, 10_000, 100),
});

/** The storm: a child process, so its own CPU is not the server's. Returns the requests it made. */
function storm(ms: number): Promise<number> {
  const script = `
    const base = ${JSON.stringify(server.url)};
    const end = Date.now() + ${ms};
    let n = 0;
    const hex = (i) => i.toString(16).padStart(2, "0");
    // A fixed rate (RATE a second in all), well under what the server can do: both runs do the same
    // work, so the difference in the server's CPU is what the dashboards cost.
    const interval = 8000 / ${rate};
    async function worker(w) {
      let next = Date.now() + w * (interval / 8);
      while (Date.now() < end) {
        const wait = next - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        next += interval;
        const i = n++;
        // Half known nodes (seeded MACs), half new machines (discovered, events).
        const mac = i % 2 ? "52-54-01-" + hex((i >> 8) & 39) + "-" + hex(i & 255) + "-" + hex(w)
                          : "52-54-02-" + hex((i >> 16) & 255) + "-" + hex((i >> 8) & 255) + "-" + hex(i & 255);
        // A kept-alive socket the server closes (http.maxRequestsPerSocket) fails one fetch: retry.
        try {
          const r = await fetch(base + "/boot/ipxe/machine.ipxe?mac=" + mac + "&buildarch=x86_64&platform=pcbios&uuid=&serial=");
          await r.arrayBuffer();
        } catch {}
      }
    }
    Promise.all(Array.from({ length: 8 }, (_, w) => worker(w))).then(() => console.log(n));
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("exit", (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`storm exited ${code}`))));
  });
}

async function measure(label: string): Promise<number> {
  const before = process.cpuUsage();
  const requests = await storm(seconds * 1000);
  const used = process.cpuUsage(before);
  const cpuMs = (used.user + used.system) / 1000;
  process.stdout.write(
    `${label}: ${requests} script requests in ${seconds} s, server CPU ${Math.round(cpuMs)} ms (${((cpuMs / (seconds * 1000)) * 100).toFixed(1)} % of a core)\n`,
  );
  return cpuMs;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  await storm(5000); // warm-up: JIT, caches, the discovered-node budget's first burst
  const alone = await measure("no dashboard");
  const pages = [];
  for (let i = 0; i < dashboards; i++) {
    const context = await browser.newContext();
    await context.addInitScript((token: string) => sessionStorage.setItem("centra-pxe.token", token), server.token);
    const page = await context.newPage();
    await page.goto(`${server.url}/ui/#/`);
    await page.getByTestId("stream-status").getByText("Live").waitFor();
    pages.push(page);
  }
  const watched = await measure(`${dashboards} overviews open`);
  process.stdout.write(
    `server CPU over the storm: ${Math.round(alone)} ms alone, ${Math.round(watched)} ms watched: the dashboards add ${(((watched - alone) / alone) * 100).toFixed(1)} % (target < 5 %)\n`,
  );
} finally {
  await browser.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
