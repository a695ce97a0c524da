import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { BmcError, type BmcEndpoint } from "../../src/bmc/client.js";
import { ConsoleRecorder, ConsoleRecordings, attachConsole } from "../../src/bmc/sol.js";
import { IPMI_SIM_COMMANDS, ipmiSimLanConf, labBmcPlan } from "../../src/lab/lab-bmc.js";
import { SEED_LAB_MACHINES } from "../../src/lab/lab-config.js";
import { requireBinaries } from "../support/netns.js";

/**
 * Serial over LAN against the real OpenIPMI `ipmi_sim` (the lab's BMC), whose SOL reads a TCP
 * "serial port" that a small Node server feeds with numbered lines. Everything runs in a network
 * namespace of its own (ports fixed inside it, nothing shared with a concurrent test); ipmitool
 * reaches it through a wrapper that enters the namespace.
 */

interface SolRig {
  endpoint: BmcEndpoint;
  ipmitool: string;
  dir: string;
}

async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function solRig(t: TestContext): Promise<SolRig | undefined> {
  if (!requireBinaries(t, "ip", "ipmi_sim", "ipmitool")) return undefined;
  const namespace = `csol-${randomBytes(4).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "centra-sol-"));
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const child of children) child.kill("SIGKILL");
    spawnSync("ip", ["netns", "del", namespace]);
    rmSync(dir, { recursive: true, force: true });
  });
  spawnSync("ip", ["netns", "add", namespace]);
  spawnSync("ip", ["-n", namespace, "link", "set", "lo", "up"]);
  const machine = SEED_LAB_MACHINES[0]!;
  const bmc = labBmcPlan(machine, 0, "ipmi", dir, "127.0.0.1");
  const password = randomBytes(6).toString("hex");
  // The machine's COM1: numbered lines every 20 ms while SOL is connected.
  const serial = `require("net").createServer((s) => { let i = 0; const t = setInterval(() => s.write("console line " + i++ + "\\r\\n"), 20); s.on("close", () => clearInterval(t)); s.on("error", () => {}); }).listen(${bmc.serialPort}, "127.0.0.1")`;
  children.push(spawn("ip", ["netns", "exec", namespace, process.execPath, "-e", serial], { stdio: "ignore" }));
  const listening = (port: number, flags: string) =>
    spawnSync("ip", ["netns", "exec", namespace, "ss", flags], { encoding: "utf8" }).stdout.includes(`:${port} `);
  // ipmi_sim dials the serial port when it starts and then only every few seconds: have it listening first.
  await waitFor("the serial port to listen", () => listening(bmc.serialPort, "-Hltn"), 10_000);
  writeFileSync(join(dir, "lan.conf"), ipmiSimLanConf(machine, bmc, password, "/bin/false"));
  writeFileSync(join(dir, "sim.emu"), IPMI_SIM_COMMANDS);
  const sim = spawn(
    "ip",
    ["netns", "exec", namespace, "ipmi_sim", "-n", "-c", join(dir, "lan.conf"), "-f", join(dir, "sim.emu"), "-s", dir],
    { stdio: "ignore" },
  );
  children.push(sim);
  const ipmitool = join(dir, "ipmitool");
  writeFileSync(ipmitool, `#!/bin/sh\nexec ip netns exec ${namespace} ipmitool "$@"\n`, { mode: 0o755 });
  await waitFor("ipmi_sim to listen", () => listening(bmc.port, "-Hlun"), 10_000);
  return {
    endpoint: { protocol: "ipmi", address: "127.0.0.1", port: bmc.port, username: "admin", password },
    ipmitool,
    dir,
  };
}

test("a recorder with no terminal keeps the console in a bounded file, and stopping it frees the SOL session", async (t) => {
  const rig = await solRig(t);
  if (!rig) return;
  const file = join(rig.dir, "consoles", "n-1.log");
  const problems: string[] = [];
  const first = new ConsoleRecorder(rig.endpoint, {
    file,
    ipmitool: rig.ipmitool,
    cipherSuite: 3,
    maxBytes: 4096,
    onProblem: (m) => problems.push(m),
  });
  // ~20 bytes every 20 ms: the 4 KiB bound is passed within seconds.
  await waitFor(
    "the console to pass the bound",
    () => existsSync(file) && /console line [3-9]\d\d/.test(readFileSync(file, "latin1")),
    30_000,
  );
  const text = readFileSync(file, "latin1");
  assert.match(text, /earlier console output dropped/, "the oldest half was dropped");
  assert.ok(statSync(file).size <= 4096 + 200, `bounded: ${statSync(file).size} bytes`);
  assert.match(text, /console line \d+\r\n/);
  await first.stop();
  const sizeAfterStop = statSync(file).size;
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(statSync(file).size, sizeAfterStop, "nothing is written after stop");

  // ipmi_sim has one SOL session: a second recorder gets it only if the first deactivated it.
  const second = join(rig.dir, "consoles", "n-2.log");
  const again = new ConsoleRecorder(rig.endpoint, { file: second, ipmitool: rig.ipmitool, cipherSuite: 3 });
  t.after(() => again.stop());
  await waitFor(
    "the second session's output",
    () => existsSync(second) && /console line \d+/.test(readFileSync(second, "latin1")),
    30_000,
  );
  await again.stop();
  assert.deepEqual(problems, [], "the first session never dropped");
});

test("the recordings of a set of nodes follow reconcile: started for new nodes, stopped for gone ones", async (t) => {
  const rig = await solRig(t);
  if (!rig) return;
  const recordings = new ConsoleRecordings((id) => (id.includes("/") ? undefined : join(rig.dir, `${id}.log`)), {
    ipmitool: rig.ipmitool,
    cipherSuite: 3,
    lingerMs: 1_000,
  });
  t.after(() => recordings.stopAll());
  await recordings.reconcile(
    new Map([
      ["n-a", rig.endpoint],
      ["n-redfish", { ...rig.endpoint, protocol: "redfish" }],
    ]),
  );
  assert.deepEqual(recordings.recording, ["n-a"], "a Redfish node has no SOL to record");
  await waitFor(
    "n-a's console",
    () => existsSync(join(rig.dir, "n-a.log")) && statSync(join(rig.dir, "n-a.log")).size > 100,
    30_000,
  );
  await recordings.reconcile(new Map());
  assert.deepEqual(
    recordings.recording,
    ["n-a"],
    "it lingers a moment: an installer's last lines come after its callback",
  );
  await waitFor("the linger to end", () => recordings.recording.length === 0, 10_000);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const size = statSync(join(rig.dir, "n-a.log")).size;
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(statSync(join(rig.dir, "n-a.log")).size, size, "stopped when the node left the set");
});

test("a Redfish BMC has no console to attach to: refused as unsupported, before anything runs", async () => {
  const endpoint: BmcEndpoint = { protocol: "redfish", address: "127.0.0.1", username: "u", password: "p" };
  await assert.rejects(
    attachConsole(endpoint),
    (error: unknown) => error instanceof BmcError && error.failure === "unsupported",
  );
  assert.throws(
    () => new ConsoleRecorder(endpoint, { file: join(tmpdir(), "never-written.log") }),
    (error: unknown) => error instanceof BmcError && /Redfish/.test(error.message),
  );
});
