import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cliArgs, repo, waitFor, type RunningDaemon, prepareState } from "../support/daemon.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";

/**
 * The daemon's signals and reloads, as an operator (or a service manager) sends them: a SIGHUP
 * while the daemon is still starting must not kill it, and a reload one part refuses leaves every
 * part — inventory, HTTP, TFTP, DHCP — on the old config, checked from the client namespace.
 */

const MAC = "52:54:00:65:43:21";
/** A TCP port something else holds in the server namespace: an HTTP move there must be refused. */
const TAKEN_PORT = 8089;
let link: TestLink;
let dir: string;
let configFile: string;
let daemon: RunningDaemon;
let blocker: ChildProcess | undefined;

const at = (last: number) => link.serverIp.replace(/\.1$/, `.${last}`);

function writeConfig(options: { hostname: string; httpPort?: number; tftpPort?: number; leaseTime?: string }): void {
  writeFileSync(
    configFile,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
http: { port: ${options.httpPort ?? 80} }
tftp: { port: ${options.tftpPort ?? 69} }
dhcp:
  subnet: ${at(0)}
  netmask: 255.255.255.0
  range: { start: ${at(100)}, end: ${at(150)} }
  router: ${link.serverIp}
  leaseTime: ${options.leaseTime ?? "10m"}
nodes:
  "${MAC}": { profile: control-plane, hostname: ${options.hostname}, ipAddress: ${at(2)} }
`,
  );
}

/** Whether the process has a handler for SIGHUP (bit 0 of SigCgt in /proc/PID/status). */
function catchesSighup(pid: number): boolean {
  try {
    const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return mask !== undefined && (BigInt(`0x${mask}`) & 1n) === 1n;
  } catch {
    return false;
  }
}

before(() => {
  link = createLink();
  dir = mkdtempSync(join(tmpdir(), "reload-"));
  configFile = join(dir, "config.yaml");
  writeConfig({ hostname: "control-plane-01" });
  prepareState(configFile, { kernel: Buffer.alloc(64 * 1024, 7), initrd: Buffer.alloc(16 * 1024, 9), version: "1" });
});

after(() => {
  for (const child of [daemon?.process, blocker]) if (child && child.exitCode === null) child.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const curl = (path: string) => link.inClient("curl", ["-sS", "--max-time", "10", `http://${link.serverIp}${path}`]);
const machineScript = () =>
  curl(`/boot/ipxe/machine.ipxe?mac=${MAC.replace(/:/g, "-")}&platform=pcbios&buildarch=i386`);

test("a SIGHUP while the daemon is still starting is held, not fatal: it serves, then reloads", async () => {
  const child = link.spawnInServer(process.execPath, cliArgs(["serve", "--config", configFile]), { cwd: repo });
  let log = "";
  child.stdout!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  daemon = {
    process: child,
    log: () => log,
    waitForLog: (what, check, ms) =>
      waitFor(what, () => check(log), { ms, context: () => `server log:\n${log.slice(-3000)}` }),
  };

  // Signal as early as the daemon can take it: once it has a SIGHUP handler, or once it logs its
  // first line (a part started) if it has none by then. Poll tightly: start-up is short.
  const pid = child.pid!;
  const deadline = Date.now() + 30_000;
  while (!catchesSighup(pid) && log === "" && child.exitCode === null && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const logWhenSignalled = log;
  child.kill("SIGHUP");
  assert.doesNotMatch(logWhenSignalled, /"msg":"serving"/, "the SIGHUP went out before the daemon served");

  await daemon.waitForLog(
    "the server to serve",
    (l) => l.includes('"msg":"serving"') || child.exitCode !== null || child.signalCode !== null,
  );
  assert.equal(child.signalCode, null, `the daemon survived the early SIGHUP:\n${log.slice(-2000)}`);
  assert.equal(child.exitCode, null, `the daemon survived the early SIGHUP:\n${log.slice(-2000)}`);
  await daemon.waitForLog("the held reload", (l) => l.includes("SIGHUP: config reloaded"));
  assert.match(log, /SIGHUP during start-up/);
  assert.match(curl("/health"), /"status":"ok"/);
  assert.match(machineScript(), /centra\.hostname=control-plane-01/);
});

test("a reload one part refuses (HTTP onto a taken port) leaves every part on the old config", async (t) => {
  if (!requireBinaries(t, "tftp", "udhcpc", "curl")) return;
  assert.equal(daemon.process.exitCode, null, "the daemon of the first test is running");
  blocker = link.spawnInServer(process.execPath, [
    "-e",
    `require("node:net").createServer().listen(${TAKEN_PORT}, "0.0.0.0", () => console.log("up"))`,
  ]);
  let blockerOut = "";
  blocker.stdout!.on("data", (chunk: Buffer) => (blockerOut += chunk.toString()));
  await waitFor("the port blocker", () => blockerOut.includes("up"));

  // Every part would change: the inventory (hostname), HTTP (port), TFTP (port), DHCP (lease time).
  writeConfig({ hostname: "control-plane-77", httpPort: TAKEN_PORT, tftpPort: 6969, leaseTime: "20m" });
  daemon.process.kill("SIGHUP");
  await daemon.waitForLog("the refusal", (log) => /new config refused|reload failed/.test(log));

  // The inventory and HTTP: the old hostname, on the old port.
  assert.match(machineScript(), /centra\.hostname=control-plane-01/);
  // TFTP: still on port 69.
  const target = join(dir, "undionly.kpxe");
  link.inClient("timeout", ["20", "tftp", link.serverIp, "69", "-m", "binary", "-c", "get", "undionly.kpxe", target]);
  assert.deepEqual(readFileSync(target), readFileSync(join(dir, "state", "ipxe", "undionly.kpxe")));
  // DHCP: the old lease time (10 minutes).
  link.inClient("ip", ["link", "set", link.clientIf, "address", MAC]);
  const out = link.inClient("sh", ["-c", `timeout 30 udhcpc -i ${link.clientIf} -n -q -f -s /bin/true 2>&1`]);
  assert.match(out, new RegExp(`lease of ${at(2).replace(/\./g, "\\.")} obtained.*lease time 600\\b`));
  assert.equal(daemon.process.exitCode, null);
  assert.match(
    daemon.log(),
    /"refusals":\[\{"part":"http","reason":"HTTP cannot move to [0-9.]+:8089[^\n]*new config refused/,
  );
});

test("after the refusal a good config applies to every part at once", async () => {
  writeConfig({ hostname: "control-plane-02", leaseTime: "10m" });
  const before = daemon.log().split("SIGHUP: config reloaded").length;
  daemon.process.kill("SIGHUP");
  await daemon.waitForLog("the reload", (log) => log.split("SIGHUP: config reloaded").length > before);
  assert.match(machineScript(), /centra\.hostname=control-plane-02/);
});

test("SIGTERM stops the daemon with status 0", async () => {
  const exited = new Promise<number | null>((resolve) => daemon.process.once("exit", (code) => resolve(code)));
  daemon.process.kill("SIGTERM");
  assert.equal(await exited, 0);
});

test("a SIGTERM while the daemon is still starting stops what started and exits 0", async () => {
  const child = link.spawnInServer(process.execPath, cliArgs(["serve", "--config", configFile]), { cwd: repo });
  let log = "";
  child.stdout!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<[number | null, string | null]>((resolve) =>
    child.once("exit", (code, signal) => resolve([code, signal])),
  );
  await waitFor("the daemon to hold its signals", () => catchesSighup(child.pid!) || child.exitCode !== null, {
    ms: 30_000,
  });
  child.kill("SIGTERM");
  assert.deepEqual(await exited, [0, null], log);
  assert.doesNotMatch(log, /"msg":"serving"/);
  assert.match(log, /stopping during start-up/);
});
