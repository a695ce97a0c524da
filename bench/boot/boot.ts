/**
 * Boot time to the initrd (issue 17, "Faster than the stack we replace"; a benchmark, not a test):
 * the same QEMU machines (same kernel and lab initrd, TCG software emulation), one at a time,
 * PXE-boot against, one after the other in the same run:
 *   seed:      the seed's stack: ISC dhcpd + tftpd-hpa + nginx with its static boot.ipxe, configured
 *              by `centra-pxe export` from the same config (bench/seed-stack.ts), serving Debian's
 *              iPXE as `init` installs it;
 *   ours:      `centra-pxe serve` with our own iPXE build (`centra-pxe ipxe build`) installed;
 *   ours-debian: `centra-pxe serve` with Debian's iPXE (`init`), i.e. without a build;
 *   ours-snponly: as `ours`, the UEFI machine's node set to `ipxe: snponly.efi`.
 * Firmware: `bios` (SeaBIOS + Debian's iPXE option ROM) and `uefi` (OVMF's own PXE → ipxe.efi).
 * Measured from QEMU's start to the lab initrd's first line on the serial console; each serial line
 * is time-stamped as it arrives (polled every 100 ms) so the phases of every boot are printed.
 *
 *   sudo nice node --import tsx bench/boot/boot.ts [--setups seed,ours] [--firmware bios,uefi]
 *     [--rounds 1] [--ipxe-source ../shared/vendor/ipxe-src.tar.xz]
 *     [--ipxe-cache /var/cache/centra-pxe/bench-boot] [--keep]
 * As root (a namespace, taps). Exits 1 when a boot did not reach the initrd.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { buildLabInitrd, findHostKernel, LAB_MARKER } from "../../src/lab/initrd.js";
import { LAB_BRIDGE, LAB_SERVER_ADDRESS, labConfig } from "../../src/lab/lab-config.js";
import {
  findFirmware,
  LabFirmware,
  type LabMachine,
  machineRunPaths,
  qemuArguments,
  SERCON_PORT_COM1,
  varsTemplateOf,
} from "../../src/lab/machines.js";
import { createLabNetwork, destroyLabNetwork } from "../../src/lab/network.js";
import { Milestone, plainText, readBoot } from "../../src/lab/progress.js";
import { cliArgs, prepareState, repo, runCli } from "../../test/support/daemon.js";
import { sh } from "../../test/support/netns.js";
import { listening, type SeedStackHost, startSeedStack, waitUntil } from "../seed-stack.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const SETUPS = ["seed", "ours", "ours-debian", "ours-snponly"] as const;
type Setup = (typeof SETUPS)[number];
const setups = option("--setups", "seed,ours").split(",") as Setup[];
for (const s of setups) if (!SETUPS.includes(s)) throw new Error(`unknown setup ${s} (${SETUPS.join(", ")})`);
const firmwares = option("--firmware", "bios,uefi").split(",");
const rounds = Number(option("--rounds", "1"));
const ipxeSource = option(
  "--ipxe-source",
  process.env.CENTRA_PXE_IPXE_SOURCE || join(repo, "../shared/vendor/ipxe-src.tar.xz"),
);
const ipxeCache = option("--ipxe-cache", "/var/cache/centra-pxe/bench-boot");
const keep = args.includes("--keep");
const BOOT_TIMEOUT_MS = Number(option("--timeout", "300")) * 1000;
const HTTP_PORT = 80;

const MACHINES: Record<string, LabMachine> = {
  bios: {
    name: "bench-bios",
    mac: "52:54:00:b0:07:01",
    firmware: LabFirmware.BiosIpxeRom,
    tap: "tap-bench0",
    expect: { profile: "worker", hostname: "bench-bios" },
  },
  uefi: {
    name: "bench-uefi",
    mac: "52:54:00:b0:07:02",
    firmware: LabFirmware.UefiPxe,
    tap: "tap-bench1",
    expect: { profile: "worker", hostname: "bench-uefi" },
  },
};
for (const f of firmwares) if (!MACHINES[f]) throw new Error(`unknown firmware ${f} (bios, uefi)`);
const machines = firmwares.map((f) => MACHINES[f]!);

/**
 * What each boot passes on its way, first line matching each, in boot order: the phases printed per
 * boot. Texts as OVMF, SeaBIOS's sercon, Debian's iPXE (1.0.0+git-20190125) and ours print them.
 */
const MARKS: readonly { name: string; pattern: RegExp }[] = [
  { name: "fw-pxe", pattern: /Start PXE over IPv4|iPXE \(PCI [0-9a-f:.]+\) starting execution/ },
  { name: "fw-addr", pattern: /Station IP address is/ },
  { name: "nbp-done", pattern: /NBP file downloaded successfully/ },
  { name: "ipxe-init", pattern: /^iPXE initialising devices/m },
  { name: "banner", pattern: /^iPXE \d\S* -- Open Source/m },
  { name: "net-up", pattern: /^Configuring \(net\d.*ok|^Waiting for link-up on net\d.*ok/m },
  { name: "script", pattern: /\.ipxe\S*\.\.\. ok/ },
  { name: "kernel-dl", pattern: /\/kernel\S*\.\.\. ok/ },
  { name: "initrd-dl", pattern: /\/initrd\S*\.\.\. ok/ },
  { name: "linux", pattern: /EFI stub: |Probing EDD|Linux version \d/ },
  { name: "initrd", pattern: new RegExp(`${LAB_MARKER} initrd started`) },
];

const work = mkdtempSync("/tmp/centra-bootbench-");
// nginx's workers and tftpd-hpa drop to an unprivileged user: the tree must be reachable to it.
chmodSync(work, 0o755);
const namespace = `cbb-${process.pid}`;
const children: ChildProcess[] = [];

function spawnInNamespace(cmd: string, argv: string[], log: string): ChildProcess {
  const child = spawn("ip", ["netns", "exec", namespace, cmd, ...argv], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  child.stdout!.on("data", (d: Buffer) => writeFileSync(log, d, { flag: "a" }));
  child.stderr!.on("data", (d: Buffer) => writeFileSync(log, d, { flag: "a" }));
  return child;
}

const host: SeedStackHost = {
  ifname: LAB_BRIDGE,
  ip: LAB_SERVER_ADDRESS,
  run: (cmd, argv) => sh("ip", ["netns", "exec", namespace, cmd, ...argv]),
};

async function stopChildren(): Promise<void> {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 1000));
}

function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  destroyLabNetwork(namespace);
  if (!keep) rmSync(work, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

/** One setup's state directory and config (the lab's config: its network, profiles and nodes). */
function prepareSetup(setup: Setup, image: { kernel: Buffer; initrd: Buffer }): { dir: string; config: string } {
  const dir = join(work, setup);
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  const input = labConfig({ stateDir: dir, machines, dhcpMode: "server" });
  input.http = { port: HTTP_PORT };
  if (setup === "ours-snponly")
    for (const m of machines) if (m.firmware === LabFirmware.UefiPxe) input.nodes![m.mac]!.ipxe = "snponly.efi";
  const config = join(dir, "config.json");
  writeFileSync(config, JSON.stringify(input));
  prepareState(config, { ...image, version: "bench" });
  if (setup === "ours" || setup === "ours-snponly") {
    process.stderr.write(`${setup}: ipxe build (cache ${ipxeCache})…\n`);
    const started = Date.now();
    runCli([
      "ipxe",
      "build",
      "--config",
      config,
      "--source",
      ipxeSource,
      "--targets",
      "ipxe.efi,snponly.efi",
      "--cache-dir",
      ipxeCache,
      "--json",
    ]);
    process.stderr.write(`${setup}: ipxe build done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  return { dir, config };
}

async function startSetup(setup: Setup, dir: string, config: string): Promise<void> {
  // Every setup starts from the same slate: no neighbour entries learnt in the previous one's boots.
  host.run("ip", ["neigh", "flush", "all"]);
  if (setup === "seed") {
    await startSeedStack({
      host,
      config,
      dir,
      httpPort: HTTP_PORT,
      spawn: (cmd, argv) => spawnInNamespace(cmd, argv, join(dir, "daemons.log")),
    });
    return;
  }
  const log = join(dir, "server.log");
  spawnInNamespace(process.execPath, cliArgs(["serve", "--config", config]), log);
  await waitUntil(
    `our server (log ${log})`,
    () => existsSync(log) && readFileSync(log, "utf8").includes('"msg":"serving"'),
  );
  await waitUntil("DHCP", () => listening(host, 67, "u"));
  await waitUntil("HTTP", () => listening(host, HTTP_PORT, "t"));
}

interface BootResult {
  setup: Setup;
  machine: LabMachine;
  round: number;
  /** Seconds from QEMU's start to each mark (absent: not seen). */
  marks: Map<string, number>;
  initrdS?: number;
  failure?: string;
  transcript: string;
}

async function bootOnce(setup: Setup, machine: LabMachine, round: number): Promise<BootResult> {
  const runDir = join(work, setup, `run-${machine.name}-${round}`);
  mkdirSync(runDir, { recursive: true });
  const paths = machineRunPaths(runDir, machine);
  const firmware = findFirmware();
  writeFileSync(paths.serconPortFile, SERCON_PORT_COM1);
  if (machine.firmware !== LabFirmware.BiosIpxeRom) copyFileSync(varsTemplateOf(machine, firmware), paths.ovmfVars);
  writeFileSync(paths.serialLog, "");
  // TCG always: the issue's figures are under software emulation, and KVM would hide the waits.
  // In the namespace: its tap is opened by name there (`ip netns exec` execs, so the PID is QEMU's).
  const vm = spawn(
    "ip",
    ["netns", "exec", namespace, "qemu-system-x86_64", ...qemuArguments(machine, firmware, paths, "tcg")],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const started = performance.now();
  children.push(vm);
  let stderr = "";
  vm.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  vm.once("exit", () => (exited = true));

  const lines: { t: number; text: string }[] = [];
  const marks = new Map<string, number>();
  let initrdS: number | undefined;
  let failure: string | undefined;
  while (true) {
    await new Promise((r) => setTimeout(r, 100));
    const t = (performance.now() - started) / 1000;
    const text = plainText(readFileSync(paths.serialLog, "latin1"));
    const complete = text.split("\n").slice(0, -1);
    for (let i = lines.length; i < complete.length; i++) lines.push({ t, text: complete[i]! });
    // On the whole text, not per line: OVMF ends its lines late (cursor moves), iPXE prints a
    // download's URL first and "... ok" when it is done.
    for (const mark of MARKS) if (!marks.has(mark.name) && mark.pattern.test(text)) marks.set(mark.name, t);
    const report = readBoot(text);
    if (report.reached.has(Milestone.Initrd)) {
      initrdS = marks.get("initrd") ?? t;
      break;
    }
    if (report.reached.has(Milestone.Failed)) {
      failure = report.failure;
      break;
    }
    if (exited) {
      failure = `QEMU exited: ${stderr.trim().split("\n").slice(-3).join(" ")}`;
      break;
    }
    if (t * 1000 > BOOT_TIMEOUT_MS) {
      failure = `no initrd within ${BOOT_TIMEOUT_MS / 1000} s${report.failure ? ` (${report.failure})` : ""}`;
      break;
    }
  }
  if (!exited) vm.kill("SIGKILL");
  await new Promise((r) => (exited ? r(undefined) : vm.once("exit", r)));
  const transcript = lines
    .filter((l) => l.text.trim())
    .map((l) => `${l.t.toFixed(1).padStart(6)} ${l.text}`)
    .join("\n");
  writeFileSync(join(runDir, "serial-timed.txt"), `${transcript}\n`);
  return {
    setup,
    machine,
    round,
    marks,
    ...(initrdS !== undefined ? { initrdS } : {}),
    ...(failure !== undefined ? { failure } : {}),
    transcript,
  };
}

const fmt = (n: number | undefined) => (n === undefined ? "-" : n.toFixed(1));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : undefined;
};

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error("run as root: the benchmark makes a network namespace and taps");
  const sources = findHostKernel();
  const image = { kernel: readFileSync(sources.kernel), initrd: buildLabInitrd(sources, LAB_SERVER_ADDRESS) };
  createLabNetwork({
    namespace,
    bridge: LAB_BRIDGE,
    serverCidr: `${LAB_SERVER_ADDRESS}/24`,
    taps: machines.map((m) => m.tap),
  });
  const prepared = new Map<Setup, { dir: string; config: string }>();
  for (const setup of setups) prepared.set(setup, prepareSetup(setup, image));

  const results: BootResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const setup of setups) {
      const { dir, config } = prepared.get(setup)!;
      await startSetup(setup, dir, config);
      for (const machine of machines) {
        process.stderr.write(`round ${round}: ${setup} ${machine.firmware}… `);
        const result = await bootOnce(setup, machine, round);
        process.stderr.write(
          result.initrdS !== undefined ? `initrd at ${fmt(result.initrdS)} s\n` : `FAILED: ${result.failure}\n`,
        );
        results.push(result);
      }
      await stopChildren();
    }
  }

  console.log(
    `\nBoot to the initrd, ${machines.length} machine(s) × ${setups.length} setup(s) × ${rounds} round(s), one VM at a time, TCG; kernel ${sources.kernelVersion}\n`,
  );
  // Per boot: when each phase was reached, seconds from QEMU's start.
  console.log(
    `${"firmware".padEnd(16)} ${"setup".padEnd(13)} ${"round".padStart(5)} ${MARKS.map((m) => m.name.padStart(9)).join(" ")}`,
  );
  for (const r of results)
    console.log(
      `${r.machine.firmware.padEnd(16)} ${r.setup.padEnd(13)} ${String(r.round).padStart(5)} ${MARKS.map((m) => fmt(r.marks.get(m.name)).padStart(9)).join(" ")}${r.failure ? `  FAILED: ${r.failure}` : ""}`,
    );
  console.log("\nmedian seconds to the initrd, and ours / seed:");
  for (const machine of machines) {
    const bySetup = new Map(
      setups.map((s) => [
        s,
        median(
          results
            .filter((r) => r.setup === s && r.machine === machine && r.initrdS !== undefined)
            .map((r) => r.initrdS!),
        ),
      ]),
    );
    const seed = bySetup.get("seed");
    console.log(
      `  ${machine.firmware.padEnd(16)} ${setups.map((s) => `${s} ${fmt(bySetup.get(s))} s${s !== "seed" && seed && bySetup.get(s) ? ` (${(bySetup.get(s)! / seed).toFixed(2)}×)` : ""}`).join("   ")}`,
    );
  }
  if (keep) console.log(`\ntime-stamped serial logs: ${work}/<setup>/run-<machine>-<round>/serial-timed.txt`);
  return results.some((r) => r.initrdS === undefined) ? 1 : 0;
}

let status = 1;
try {
  status = await main();
} catch (error) {
  process.stderr.write(`${(error as Error).stack}\n`);
} finally {
  await stopChildren();
  cleanup();
}
process.exit(status);
