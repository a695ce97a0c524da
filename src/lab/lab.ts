import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LocalBootMethod } from "../boot/boot-chain.js";
import { CentraError } from "../errors.js";
import { bootloaderDir } from "../files/state-dir.js";
import { chooseAccelerator } from "./host.js";
import { arm64Root, buildLabInitrd, findArm64Image, findHostKernel } from "./initrd.js";
import {
  ARM64_LAB_IMAGE,
  LAB_BRIDGE,
  LAB_FOREIGN_DHCP_ADDRESS,
  LAB_IPV6_PREFIX,
  LAB_SERVER_ADDRESS,
  foreignDhcpArguments,
  labConfigYaml,
  type LabNodeBmc,
  type LabTlsFiles,
} from "./lab-config.js";
import {
  LabFirmware,
  SERCON_PORT_COM1,
  findFirmware,
  isArm64,
  machineRunPaths,
  qemuArguments,
  type Accelerator,
  type FirmwarePaths,
  type LabMachine,
  type MachineRunPaths,
  qemuBinaryOf,
  varsTemplateOf,
} from "./machines.js";
import {
  IPMI_SIM_COMMANDS,
  chassisControlScript,
  ipmiSimLanConf,
  labDiskImage,
  labBmcPlan,
  newLabBmcPassword,
  type LabBmc,
  type LabBmcType,
} from "./lab-bmc.js";
import { redfishSystemSpec, type RedfishBmcSpec } from "./redfish-bmc.js";
import { createForeignDhcpNamespace, createLabNetwork, destroyLabNetwork, namespaceExists } from "./network.js";
import { Milestone, MILESTONE_ORDER, readBoot, serialTail, type BootReport } from "./progress.js";

/**
 * `centra-pxe lab`: an isolated network (namespace + bridge), our server running inside it with a
 * generated config, and QEMU machines PXE-booting from it. Everything the lab makes is recorded in
 * `lab.json` in its state directory, so `lab down` (from another process, later) removes exactly that.
 */

export const DEFAULT_LAB_STATE_DIR = "/var/lib/centra-pxe-lab";
export const DEFAULT_LAB_NAMESPACE = "centra-lab";

export class LabError extends CentraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("LAB", message, options);
  }
}

export interface LabOptions {
  stateDir: string;
  namespace: string;
  machines: readonly LabMachine[];
  dhcpMode: "server" | "proxy";
  /**
   * Put every registered machine in `provisioning` before it boots (default true), as an operator
   * would: its boot then carries a single-use `centra.token=` and the initrd's callback makes it
   * `provisioned`. Without it the callback arrives without a token and is refused (401).
   */
  provision?: boolean;
  /** `provisioning:` of the server's config (the e2e test of a machine that never calls back). */
  provisioning?: { timeout?: string; apiUrl?: string };
  /**
   * Send IPv6 router advertisements on the lab bridge (dnsmasq, RA only). iPXE's `ifconf` waits for
   * every configurator, IPv6 included, so on an IPv4-only network each iPXE start spends ~17 s
   * (under TCG) soliciting a router that never answers; with an RA it goes on at once. Off by
   * default: the seed's network is IPv4 only, and the lab shows what such a network costs.
   */
  ipv6RouterAdvertisements?: boolean;
  /** Forced accelerator; by default KVM when it really works, else TCG. */
  accelerator?: Accelerator;
  /**
   * ARM64 machines: the iPXE source `ipxe build` compiles ipxe-arm64.efi from (default
   * `$CENTRA_PXE_IPXE_SOURCE`), and its cache (default: in the lab's state directory, so gone with it).
   */
  ipxeSource?: string;
  ipxeCacheDir?: string;
  /**
   * Give every machine a BMC of this kind (`lab up --bmc`): the machines stay powered off, and
   * their BMC (ipmi_sim, or the lab's Redfish server) powers them on with the boot device it holds.
   * Nodes are then not put in `provisioning` by the lab: `nodes provision NODE --power` does it.
   */
  bmc?: LabBmcType;
  /**
   * `lab up --https`: a CA and server certificate made by `centra-pxe tls init` in the lab's state
   * directory, `http.tls` on, and every machine that can run our own iPXE build (with that CA
   * embedded, from `ipxe build`) booting over https://: BIOS machines with it as their NIC's option
   * ROM, x86 UEFI machines with it as ipxe.efi (UEFI HTTP boot fetches it over https://, trusting
   * the CA handed to OVMF through fw_cfg). Needs the iPXE source, as ARM64 machines do.
   */
  https?: boolean;
  /** Every profile's `localBoot` in the server's config (default: the platform's way). */
  localBoot?: LocalBootMethod;
  say?: (line: string) => void;
}

/** What `lab up --https` made: the server's TLS files, and what the machines are given to trust it. */
export interface LabHttps extends LabTlsFiles {
  /** The CA as an EFI_SIGNATURE_LIST, for OVMF's fw_cfg `etc/edk2/https/cacerts`. */
  caSignatureList: string;
  /** Our iPXE build as the virtio-net option ROM of BIOS machines (instead of Debian's pxe-virtio.rom). */
  ipxeRom?: string;
}

interface RecordedProcess {
  pid: number;
  /** A word of its command line, so a recycled PID is never killed by `lab down`. */
  marker: string;
  log: string;
}

export interface LabState {
  version: 1;
  namespace: string;
  foreignNamespace?: string;
  stateDir: string;
  dhcpMode: "server" | "proxy";
  accelerator?: Accelerator;
  configFile: string;
  server?: RecordedProcess;
  foreignDhcp?: RecordedProcess;
  routerAdvertiser?: RecordedProcess;
  /** The lab's Redfish BMC server (one process, a listener per machine). */
  redfishBmc?: RecordedProcess;
  /** `lab up --https`. */
  https?: LabHttps;
  machines: (LabMachine & {
    /** It runs our iPXE build with the lab's CA (`lab up --https`): scripts, kernel and initrd over https://. */
    overHttps?: boolean;
    serialLog: string;
    /** The machine's BMC; its QEMU is then the BMC's, found through `bmc.pidFile`. */
    bmc?: LabBmc;
    /** The machine's ipmi_sim. */
    bmcProcess?: RecordedProcess;
    startedAt?: number;
    process?: RecordedProcess;
    times?: Partial<Record<Milestone, number>>;
  })[];
}

const STATE_FILE = "lab.json";

export function readLabState(stateDir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, STATE_FILE), "utf8")) as LabState;
  } catch {
    return undefined;
  }
}

function writeLabState(state: LabState): void {
  writeFileSync(join(state.stateDir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** How to run this same centra-pxe: the built JavaScript, or the TypeScript source through tsx. */
export function centraPxeCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) {
    // --import with tsx's resolved URL: the lab may run from any working directory.
    return [process.execPath, "--import", import.meta.resolve("tsx"), join(dirname(here), "..", "cli", "main.ts")];
  }
  return [process.execPath, join(dirname(here), "..", "cli", "main.js")];
}

/** Run a centra-pxe subcommand to completion (inside `namespace` when given); its stdout. */
function runCli(args: string[], what: string, namespace?: string): string {
  const command = [...(namespace ? ["ip", "netns", "exec", namespace] : []), ...centraPxeCommand(), ...args];
  const result = spawnSync(command[0]!, command.slice(1), { encoding: "utf8" });
  if (result.status !== 0)
    throw new LabError(`${what} failed (centra-pxe ${args.join(" ")}):\n${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** Start a long-running process inside a namespace, detached, output to `log`; `lab down` ends it. */
function spawnInNamespace(namespace: string, command: string[], log: string): ChildProcess {
  const fd = openSync(log, "a");
  try {
    // `ip netns exec` execs the command, so the PID recorded is the command's own.
    const child = spawn("ip", ["netns", "exec", namespace, ...command], { detached: true, stdio: ["ignore", fd, fd] });
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}

function alive(proc: RecordedProcess | undefined): boolean {
  if (!proc) return false;
  try {
    const cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
    // A zombie has an empty cmdline: it is gone as far as the lab is concerned.
    return cmdline.includes(proc.marker);
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitForServer(server: RecordedProcess, child: ChildProcess, timeoutMs: number): Promise<void> {
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const log = existsSync(server.log) ? readFileSync(server.log, "utf8") : "";
    if (/"msg":"serving"/.test(log)) return;
    if (exited)
      throw new LabError(
        `the server exited while starting; its log (${server.log}):\n${log.split("\n").slice(-20).join("\n")}`,
      );
    await sleep(200);
  }
  throw new LabError(`the server did not report "serving" within ${timeoutMs / 1000} s; see ${server.log}`);
}

/** A running lab: its recorded state and the QEMU children this process started. */
export interface Lab {
  state: LabState;
  /** Exit code per machine name once its QEMU ended (only for machines this process started). */
  exits: Map<string, number | null>;
}

/**
 * Build the lab image, network and server, then start every machine. Whatever was created before a
 * failure is recorded, so `labDown` cleans it up.
 */
export async function labUp(options: LabOptions): Promise<Lab> {
  const say = options.say ?? (() => {});
  const { stateDir, namespace } = options;
  if (readLabState(stateDir) || namespaceExists(namespace)) {
    throw new LabError(
      `a lab is already up (${existsSync(join(stateDir, STATE_FILE)) ? join(stateDir, STATE_FILE) : `namespace ${namespace}`}); run \`centra-pxe lab down\` first`,
    );
  }
  const dirs = {
    image: join(stateDir, "image"),
    server: join(stateDir, "server"),
    machines: join(stateDir, "machines"),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const state: LabState = {
    version: 1,
    namespace,
    stateDir,
    dhcpMode: options.dhcpMode,
    configFile: join(stateDir, "config.yaml"),
    machines: options.machines.map((m) => ({ ...m, serialLog: machineRunPaths(dirs.machines, m).serialLog })),
  };
  writeLabState(state);

  say("building the lab image from the host's kernel and busybox");
  const sources = findHostKernel();
  const image = { kernel: join(dirs.image, "kernel"), initrd: join(dirs.image, "initrd") };
  copyFileSync(sources.kernel, image.kernel);
  writeFileSync(image.initrd, buildLabInitrd(sources, LAB_SERVER_ADDRESS));

  const bmcs = options.bmc ? labBmcPlans(state, options.bmc) : undefined;
  if (options.https) {
    // As an operator sets it up: `tls init` makes the CA and the server certificate for our address.
    const tlsDir = join(stateDir, "tls");
    runCli(["tls", "init", "--dir", tlsDir, "--address", LAB_SERVER_ADDRESS, "--json"], "making the lab's CA");
    state.https = {
      ca: join(tlsDir, "ca.pem"),
      cert: join(tlsDir, "server.pem"),
      key: join(tlsDir, "server-key.pem"),
      caSignatureList: join(tlsDir, "ca.esl"),
    };
    writeLabState(state);
    say(`HTTPS: the lab's CA ${state.https.ca} (for OVMF: ${state.https.caSignatureList}), http.tls on port 443`);
  }
  writeFileSync(
    state.configFile,
    labConfigYaml({
      stateDir: dirs.server,
      machines: options.machines,
      dhcpMode: options.dhcpMode,
      ...(options.provisioning ? { provisioning: options.provisioning } : {}),
      ...(bmcs ? { bmcs: Object.fromEntries(bmcs.map((b, i) => [state.machines[i]!.name, nodeBmcConfig(b)])) } : {}),
      ...(state.https ? { https: state.https } : {}),
      ...(options.localBoot !== undefined ? { localBoot: options.localBoot } : {}),
    }),
  );
  // An ARM64 Secure Boot machine needs Debian's signed arm64 shim and grub, which an x86 host has
  // only unpacked from their .debs (scripts/bootstrap), never installed.
  const foreignRoot = options.machines.some((m) => m.firmware === LabFirmware.Arm64SecureBoot)
    ? ["--foreign-root", arm64Root()]
    : [];
  runCli(["init", "--config", state.configFile, ...foreignRoot], "installing the bootloaders");
  // The admin token for the API (nodes provision); kept in the lab's state directory, removed with it.
  const adminToken = runCli(
    ["token", "create", "--name", "lab", "--config", state.configFile],
    "creating the lab's API token",
  ).trim();
  writeFileSync(join(stateDir, "admin-token"), `${adminToken}\n`, { mode: 0o600 });
  runCli(
    [
      "images",
      "add",
      "nixos",
      "--config",
      state.configFile,
      "--kernel",
      image.kernel,
      "--initrd",
      image.initrd,
      "--version",
      `lab-${sources.kernelVersion}`,
    ],
    "adding the lab image",
  );

  if (state.https) buildHttpsIpxe(options, state, dirs.server, say);
  if (options.machines.some(isArm64)) addArm64(options, state, dirs.image, say);

  const accelerator = options.accelerator ?? (await chooseAccelerator(image, join(stateDir, "kvm-probe.log")));
  state.accelerator = accelerator;
  say(
    accelerator === "kvm"
      ? "accelerator: KVM"
      : "accelerator: TCG software emulation (no usable KVM); a boot takes about a minute",
  );

  say(`network namespace ${namespace}: bridge ${LAB_BRIDGE} with the server at ${LAB_SERVER_ADDRESS}/24`);
  createLabNetwork({
    namespace,
    bridge: LAB_BRIDGE,
    serverCidr: `${LAB_SERVER_ADDRESS}/24`,
    taps: options.machines.map((m) => m.tap),
  });

  if (options.ipv6RouterAdvertisements) {
    // nodad: the address is usable at once, so dnsmasq can advertise from it immediately.
    spawnSync("ip", ["-n", namespace, "addr", "add", `${LAB_IPV6_PREFIX}10/64`, "dev", LAB_BRIDGE, "nodad"], {
      stdio: "ignore",
    });
    const log = join(stateDir, "router-advertisements.log");
    // Only an RA range: dnsmasq opens no DHCPv4 socket, so it does not compete with ours on port 67.
    const child = spawnInNamespace(
      namespace,
      [
        "dnsmasq",
        "--keep-in-foreground",
        "--port=0",
        `--interface=${LAB_BRIDGE}`,
        "--enable-ra",
        `--dhcp-range=${LAB_IPV6_PREFIX},ra-only,64`,
        `--pid-file=${join(stateDir, "router-advertisements.pid")}`,
        "--log-facility=-",
      ],
      log,
    );
    state.routerAdvertiser = { pid: child.pid!, marker: "dnsmasq", log };
    writeLabState(state);
    say(`IPv6 router advertisements for ${LAB_IPV6_PREFIX}/64 on ${LAB_BRIDGE} (iPXE stops waiting for a router)`);
  }

  if (options.dhcpMode === "proxy") {
    const foreignNamespace = `${namespace}-dhcp`.slice(0, 30);
    state.foreignNamespace = foreignNamespace;
    writeLabState(state);
    createForeignDhcpNamespace({
      labNamespace: namespace,
      bridge: LAB_BRIDGE,
      namespace: foreignNamespace,
      cidr: `${LAB_FOREIGN_DHCP_ADDRESS}/24`,
      interface: "fdhcp0",
    });
    const log = join(stateDir, "foreign-dhcp.log");
    const child = spawnInNamespace(
      foreignNamespace,
      [
        "dnsmasq",
        ...foreignDhcpArguments({
          interface: "fdhcp0",
          leaseFile: join(stateDir, "foreign-dhcp.leases"),
          pidFile: join(stateDir, "foreign-dhcp.pid"),
        }),
      ],
      log,
    );
    state.foreignDhcp = { pid: child.pid!, marker: "dnsmasq", log };
    say(`foreign DHCP server (dnsmasq, addresses only) at ${LAB_FOREIGN_DHCP_ADDRESS}; ours in proxy mode`);
  }
  writeLabState(state);

  const serverLog = join(stateDir, "server.log");
  const serverChild = spawnInNamespace(
    namespace,
    [...centraPxeCommand(), "serve", "--config", state.configFile],
    serverLog,
  );
  state.server = { pid: serverChild.pid!, marker: "serve", log: serverLog };
  writeLabState(state);
  await waitForServer(state.server, serverChild, 60_000);
  say(`server up (pid ${serverChild.pid}), JSON log ${serverLog}`);
  const lab: Lab = { state, exits: new Map() };
  if (options.bmc) {
    await startLabBmcs(lab, options.bmc, say);
    return lab;
  }
  if (options.provision !== false) {
    for (const m of state.machines) {
      if (!("profile" in m.expect)) continue;
      runCli(
        ["nodes", "provision", m.mac, "--url", `http://${LAB_SERVER_ADDRESS}`, "--token", adminToken],
        `provisioning ${m.name}`,
        namespace,
      );
      say(`${m.name} ${m.mac} set to provisioning: its next boot installs ${m.expect.profile} and must call back`);
    }
  }

  for (const machine of state.machines) {
    startMachine(lab, machine, machineRunPaths(dirs.machines, machine), { freshVars: true });
    say(
      `${machine.name} ${machine.mac} ${machine.firmware} started (pid ${machine.process!.pid}), serial console ${machine.serialLog}`,
    );
  }
  writeLabState(state);
  return lab;
}

/**
 * What ARM64 machines boot: Debian's arm64 kernel (signed, so Secure Boot machines run it too) with
 * the lab initrd built from its modules and busybox (findArm64Image), as the arm64 build of image
 * ARM64_LAB_IMAGE, and, for those that PXE boot iPXE, our ipxe-arm64.efi (Debian ships no ARM iPXE),
 * cross-built from source by `ipxe build` with its embedded script chaining to this server.
 */
function addArm64(options: LabOptions, state: LabState, imageDir: string, say: (line: string) => void): void {
  const sources = findArm64Image();
  const image = { kernel: join(imageDir, "arm64-kernel"), initrd: join(imageDir, "arm64-initrd") };
  copyFileSync(sources.kernel, image.kernel);
  writeFileSync(image.initrd, buildLabInitrd(sources, LAB_SERVER_ADDRESS));
  runCli(
    [
      "images",
      "add",
      ARM64_LAB_IMAGE,
      "--config",
      state.configFile,
      "--kernel",
      image.kernel,
      "--initrd",
      image.initrd,
      "--version",
      `lab-${sources.kernelVersion}`,
      "--arch",
      "arm64",
    ],
    "adding the arm64 lab image",
  );
  if (!options.machines.some((m) => m.firmware === LabFirmware.Arm64Pxe)) return;
  buildOwnIpxe(
    options,
    state,
    ["ipxe-arm64.efi"],
    "ARM64 machines need",
    "a cross-compile: minutes, once per cache",
    say,
  );
}

/**
 * `lab up --https`: our iPXE, built with the lab's CA and an embedded script that chains to
 * https://, for every machine that can run it: as the option ROM of BIOS machines, as ipxe.efi
 * for x86 UEFI ones (PXE over TFTP, or UEFI HTTP boot over https://). Secure Boot machines run
 * Debian's signed chain instead (an unsigned iPXE is refused there) and stay as they are.
 */
function buildHttpsIpxe(
  options: LabOptions,
  state: LabState,
  serverStateDir: string,
  say: (line: string) => void,
): void {
  const https = state.https!;
  for (const m of state.machines) m.overHttps = runsOurIpxe(m);
  const firmwares = new Set(state.machines.filter((m) => m.overHttps).map((m) => m.firmware));
  const targets = [
    ...(firmwares.has(LabFirmware.BiosIpxeRom) ? ["ipxe-virtio.rom"] : []),
    ...(firmwares.has(LabFirmware.UefiPxe) || firmwares.has(LabFirmware.UefiHttp) ? ["ipxe.efi"] : []),
  ];
  if (targets.length > 0) {
    buildOwnIpxe(
      options,
      state,
      targets,
      "`lab up --https` needs",
      "the first compile takes minutes; then cached",
      say,
    );
    if (targets.includes("ipxe-virtio.rom")) https.ipxeRom = join(bootloaderDir(serverStateDir), "ipxe-virtio.rom");
  }
  writeLabState(state);
  const names = state.machines.filter((m) => m.overHttps).map((m) => m.name);
  say(`over HTTPS (our iPXE build trusting the lab's CA): ${names.join(", ") || "no machine"}`);
}

/** Which lab machines run our own iPXE build under `--https` (the ARM64 one: ipxe-arm64.efi, built with http.tls on). */
export function runsOurIpxe(machine: LabMachine): boolean {
  return machine.firmware !== LabFirmware.UefiSecureBoot && machine.firmware !== LabFirmware.Arm64SecureBoot;
}

/** `ipxe build` of `targets` from the iPXE source into the lab server's stateDir/ipxe, with the lab's config (https:// and its CA with http.tls). */
function buildOwnIpxe(
  options: LabOptions,
  state: LabState,
  targets: readonly string[],
  who: string,
  cost: string,
  say: (line: string) => void,
): void {
  const source = options.ipxeSource ?? process.env.CENTRA_PXE_IPXE_SOURCE;
  if (!source) throw new LabError(`${who} ${targets.join(", ")} built from iPXE's source: set CENTRA_PXE_IPXE_SOURCE`);
  say(`building ${targets.join(", ")} from ${source} (${cost})`);
  const started = Date.now();
  runCli(
    [
      "ipxe",
      "build",
      "--config",
      state.configFile,
      "--source",
      source,
      "--targets",
      targets.join(","),
      "--cache-dir",
      options.ipxeCacheDir ?? join(state.stateDir, "ipxe-cache"),
      "--json",
    ],
    `building ${targets.join(", ")}`,
  );
  say(`${targets.join(", ")} ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** The firmware files a machine of this lab boots with: with `--https`, our ROM and the CA for OVMF. */
function labFirmware(state: LabState): FirmwarePaths {
  const found = findFirmware();
  if (!state.https) return found;
  return {
    ...found,
    httpsCaCerts: state.https.caSignatureList,
    ...(state.https.ipxeRom ? { ipxeVirtioRom: state.https.ipxeRom } : {}),
  };
}

/**
 * Give every machine of the lab its BMC, powered off: the files each BMC runs its machine's QEMU
 * from (its arguments per boot device, the UEFI variable store), then the BMC processes in the lab
 * namespace. The boot device starts as `default` (disk), as a machine with an OS installed.
 */
async function startLabBmcs(lab: Lab, type: LabBmcType, say: (line: string) => void): Promise<void> {
  const { state } = lab;
  const firmware = labFirmware(state);
  const machinesDir = join(state.stateDir, "machines");
  const plans = labBmcPlans(state, type);
  for (const [index, machine] of state.machines.entries()) {
    const bmc = plans[index]!;
    mkdirSync(bmc.dir, { recursive: true, mode: 0o700 });
    const password = newLabBmcPassword();
    writeFileSync(bmc.passwordFile, `${password}\n`, { mode: 0o600 });
    writeFileSync(bmc.diskImage, labDiskImage());
    const paths = { ...machineRunPaths(machinesDir, machine), pidFile: bmc.pidFile };
    writeFileSync(paths.serconPortFile, SERCON_PORT_COM1);
    if (machine.firmware !== LabFirmware.BiosIpxeRom) copyFileSync(firmware.ovmfVarsTemplate, paths.ovmfVars);
    for (const bootDevice of ["pxe", "disk"] as const) {
      const args = qemuArguments(machine, firmware, paths, state.accelerator ?? "tcg", undefined, {
        bootDevice,
        serialPort: bmc.serialPort,
        ...(bmc.ipmiVmPort !== undefined ? { ipmiVmPort: bmc.ipmiVmPort } : {}),
        qmpSocket: bmc.qmpSocket,
        diskImage: bmc.diskImage,
      });
      writeFileSync(bmc.argsFiles[bootDevice], `${args.join("\n")}\n`);
    }
    writeFileSync(bmc.bootFile, "default\n");
    machine.bmc = bmc;
    machine.serialLog = paths.serialLog;
    if (type === "ipmi") {
      const chassis = join(bmc.dir, "chassis-control");
      writeFileSync(chassis, chassisControlScript(machine, bmc), { mode: 0o700 });
      const lanConf = join(bmc.dir, "lan.conf");
      writeFileSync(lanConf, ipmiSimLanConf(machine, bmc, password, chassis), { mode: 0o600 });
      const commands = join(bmc.dir, "ipmisim.emu");
      writeFileSync(commands, IPMI_SIM_COMMANDS);
      const simState = join(bmc.dir, "ipmi_sim");
      mkdirSync(simState, { recursive: true });
      const log = join(bmc.dir, "ipmi_sim.log");
      // -n: no console on stdin/stdout (it runs detached); -s: its persistent state stays in the lab.
      const child = spawnInNamespace(
        state.namespace,
        ["ipmi_sim", "-n", "-c", lanConf, "-f", commands, "-s", simState],
        log,
      );
      machine.bmcProcess = { pid: child.pid!, marker: "ipmi_sim", log };
    }
    writeLabState(state);
  }
  if (type === "redfish") {
    const spec = join(state.stateDir, "bmc", "redfish-bmc.json");
    writeFileSync(spec, `${JSON.stringify(redfishBmcSpec(state), null, 2)}\n`, { mode: 0o600 });
    const log = join(state.stateDir, "bmc", "redfish-bmc.log");
    const child = spawnInNamespace(state.namespace, [...centraPxeCommand(), "lab", "redfish-bmc", spec], log);
    state.redfishBmc = { pid: child.pid!, marker: "redfish-bmc", log };
    writeLabState(state);
  }
  await waitForBmcs(state, 30_000);
  for (const m of state.machines)
    say(
      `${m.name} ${m.mac} powered off behind ${type} BMC ${m.bmc!.address}:${m.bmc!.port} (user ${m.bmc!.username}, password in ${m.bmc!.passwordFile})`,
    );
}

function labBmcPlans(state: LabState, type: LabBmcType): LabBmc[] {
  return state.machines.map((m, i) => labBmcPlan(m, i, type, join(state.stateDir, "bmc"), LAB_SERVER_ADDRESS));
}

/**
 * The server's view of a lab BMC (its config's `nodes.<mac>.bmc`): ipmi_sim needs cipher suite 3
 * named (it has no "Get Channel Cipher Suites", ipmitool would wait ~10 s), the Redfish lab BMC
 * speaks plain HTTP.
 */
function nodeBmcConfig(bmc: LabBmc): LabNodeBmc {
  return {
    type: bmc.type,
    address: bmc.address,
    port: bmc.port,
    username: bmc.username,
    passwordFile: bmc.passwordFile,
    ...(bmc.type === "ipmi" ? { cipherSuite: 3 } : { scheme: "http" as const }),
  };
}

function redfishBmcSpec(state: LabState): RedfishBmcSpec {
  return { systems: state.machines.map(redfishSystemSpec) };
}

/** The QEMU a BMC powered on, from its pid file (the BMC, not the lab, started it). */
export function bmcMachineProcess(bmc: LabBmc): RecordedProcess | undefined {
  try {
    const pid = Number(readFileSync(bmc.pidFile, "utf8").trim());
    const proc = { pid, marker: "qemu-system", log: bmc.qemuLog };
    return Number.isInteger(pid) && alive(proc) ? proc : undefined;
  } catch {
    return undefined;
  }
}

/** Wait until every BMC answers on its LAN port: ipmi_sim binds its UDP port, the Redfish server its TCP ones. */
async function waitForBmcs(state: LabState, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const listening = spawnSync("ip", ["netns", "exec", state.namespace, "ss", "-Hlnut"], { encoding: "utf8" }).stdout;
    const missing = state.machines.filter((m) => m.bmc && !listening.includes(`${m.bmc.address}:${m.bmc.port} `));
    if (missing.length === 0) return;
    const dead = state.machines.find((m) => m.bmcProcess && !alive(m.bmcProcess));
    const deadProcess =
      dead?.bmcProcess ?? (state.redfishBmc && !alive(state.redfishBmc) ? state.redfishBmc : undefined);
    if (deadProcess || Date.now() > deadline) {
      const log = deadProcess ?? missing[0]!.bmcProcess ?? state.redfishBmc;
      throw new LabError(
        `the BMC of ${missing.map((m) => m.name).join(", ")} ${deadProcess ? "exited" : `is not listening after ${timeoutMs / 1000} s`}; its log (${log?.log}):\n${log ? readSerial(log.log).trim().split("\n").slice(-15).join("\n") : ""}`,
      );
    }
    await sleep(200);
  }
}

/** Start one machine's QEMU in the lab namespace and record it; its exit lands in `lab.exits`. */
function startMachine(
  lab: Lab,
  machine: LabState["machines"][number],
  paths: MachineRunPaths,
  options: { freshVars: boolean },
): void {
  const { state } = lab;
  const firmware = labFirmware(state);
  writeFileSync(paths.serconPortFile, SERCON_PORT_COM1);
  if (machine.firmware !== LabFirmware.BiosIpxeRom && (options.freshVars || !existsSync(paths.ovmfVars)))
    copyFileSync(varsTemplateOf(machine, firmware), paths.ovmfVars);
  const log = join(dirname(paths.serialLog), `${machine.name}.qemu.log`);
  const child = spawnInNamespace(
    state.namespace,
    [qemuBinaryOf(machine), ...qemuArguments(machine, firmware, paths, state.accelerator ?? "tcg")],
    log,
  );
  // Only the machine's current QEMU counts: a previous boot's process ending late must not mark a new one as ended.
  child.once("exit", (code) => {
    if (machine.process?.pid === child.pid) lab.exits.set(machine.name, code);
  });
  lab.exits.delete(machine.name);
  machine.serialLog = paths.serialLog;
  machine.process = { pid: child.pid!, marker: "qemu-system", log };
  machine.startedAt = Date.now();
  machine.times = {};
}

/**
 * Power a machine of a running lab on again (the same MAC, firmware and UEFI variable store), as
 * after a reinstall: its previous QEMU is stopped first, and this boot's serial console goes to a
 * new file (`<name>.boot<n>.serial.log`) so the earlier boots' logs stay readable.
 */
export async function bootMachineAgain(lab: Lab, name: string): Promise<LabState["machines"][number]> {
  const machine = lab.state.machines.find((m) => m.name === name);
  if (!machine) throw new LabError(`no machine ${name} in this lab`);
  await stopProcess(machine.process);
  const dir = join(lab.state.stateDir, "machines");
  let boot = 2;
  while (existsSync(join(dir, `${name}.boot${boot}.serial.log`))) boot++;
  const paths = { ...machineRunPaths(dir, machine), serialLog: join(dir, `${name}.boot${boot}.serial.log`) };
  startMachine(lab, machine, paths, { freshVars: false });
  writeLabState(lab.state);
  return machine;
}

/** Power a machine of a running lab off (its QEMU ends); a no-op when it is already off. */
export async function stopMachine(lab: Lab, name: string): Promise<void> {
  const machine = lab.state.machines.find((m) => m.name === name);
  if (!machine) throw new LabError(`no machine ${name} in this lab`);
  await stopProcess(machine.process);
}

export interface MachineProgress {
  machine: LabState["machines"][number];
  report: BootReport;
  running: boolean;
  /** Seconds after start at which each milestone was first seen (by this watcher). */
  times: Partial<Record<Milestone, number>>;
  done: boolean;
}

function readSerial(path: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return "";
  }
}

/**
 * A machine is done when it called back, failed for good, left for its local disk (an installed
 * machine), ended, or (unknown machines) shows the menu.
 */
function isDone(machine: LabState["machines"][number], report: BootReport, running: boolean): boolean {
  if (
    report.reached.has(Milestone.CalledBack) ||
    report.reached.has(Milestone.Failed) ||
    report.reached.has(Milestone.LocalDisk) ||
    !running
  )
    return true;
  return "menu" in machine.expect && report.reached.has(Milestone.Menu);
}

/**
 * Follow every machine's serial console until all are done or `timeoutMs` passes, reporting each
 * milestone once with its time. Returns the final progress per machine.
 */
export async function watchLab(
  lab: Lab | LabState,
  options: {
    timeoutMs: number;
    onMilestone?: (p: MachineProgress, milestone: Milestone) => void;
    pollMs?: number;
    recordTimes?: boolean;
    stampNew?: boolean;
  },
): Promise<MachineProgress[]> {
  const state = "state" in lab ? lab.state : lab;
  const exits = "state" in lab ? lab.exits : undefined;
  // Times a live watcher recorded earlier (`lab up`) are kept; this watcher only adds what is new.
  const progress: MachineProgress[] = state.machines.map((machine) => ({
    machine,
    report: readBoot(""),
    running: true,
    times: { ...machine.times },
    done: false,
  }));
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    for (const p of progress) {
      if (p.done) continue;
      p.running = p.machine.bmc
        ? bmcMachineProcess(p.machine.bmc) !== undefined
        : exits
          ? !exits.has(p.machine.name)
          : alive(p.machine.process);
      p.report = readBoot(readSerial(p.machine.serialLog));
      for (const m of MILESTONE_ORDER) {
        if (p.report.reached.has(m) && p.times[m] === undefined && options.stampNew !== false) {
          p.times[m] = (Date.now() - (p.machine.startedAt ?? Date.now())) / 1000;
          options.onMilestone?.(p, m);
        }
      }
      p.done = isDone(p.machine, p.report, p.running);
    }
    if (progress.every((p) => p.done) || Date.now() > deadline) {
      if (options.recordTimes) {
        for (const p of progress) p.machine.times = p.times;
        writeLabState(state);
      }
      return progress;
    }
    await sleep(options.pollMs ?? 500);
  }
}

/** One line per machine for `lab status` and the end of `lab up`. */
export function describeProgress(p: MachineProgress): string {
  const r = p.report;
  const steps = MILESTONE_ORDER.filter((m) => r.reached.has(m) && m !== Milestone.Failed)
    .sort((a, b) => (p.times[a] ?? Infinity) - (p.times[b] ?? Infinity))
    .map((m) => (p.times[m] !== undefined ? `${m} ${p.times[m]!.toFixed(0)}s` : m));
  const params = Object.entries(r.params)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const outcome = r.reached.has(Milestone.CalledBack)
    ? `called back (HTTP ${r.callbackStatus})`
    : r.reached.has(Milestone.Failed)
      ? `FAILED: ${r.failure}`
      : r.reached.has(Milestone.LocalDisk)
        ? "sent to its local disk"
        : r.reached.has(Milestone.Menu)
          ? "at the menu"
          : p.running
            ? "booting"
            : `stopped${r.failure ? ` (${r.failure})` : ""}`;
  // `lab up --https`: say which machines stayed on TLS, the point of such a lab.
  const transport = p.machine.overHttps ? "over HTTPS: " : "";
  return `${p.machine.name} ${p.machine.mac} ${p.machine.firmware.padEnd(13)} ${transport}${outcome}${r.address ? ` addr ${r.address}` : ""}${params ? ` [${params}]` : ""}\n    ${steps.join(" → ") || "no output yet"}${p.machine.bmc ? `\n    ${describeBmc(p.machine.bmc)}` : ""}`;
}

/** A machine's BMC as `lab status` shows it: where it listens, whose credentials, its power and boot device. */
export function describeBmc(bmc: LabBmc): string {
  let bootDevice = "?";
  try {
    bootDevice = readFileSync(bmc.bootFile, "utf8").trim();
  } catch {
    /* not written yet */
  }
  const power = bmcMachineProcess(bmc) ? "on" : "off";
  return `BMC ${bmc.type} ${bmc.address}:${bmc.port} user ${bmc.username} password file ${bmc.passwordFile}; power ${power}, boot device ${bootDevice}`;
}

/**
 * The tail of a machine's serial console for a failure message, and what QEMU itself said (a tap
 * or firmware file it could not open never reaches the serial console).
 */
export function machineSerialTail(machine: LabState["machines"][number], lines = 40): string {
  const qemu = machine.process ? readSerial(machine.process.log).trim() : "";
  return (
    serialTail(readSerial(machine.serialLog), lines) +
    (qemu ? `\n--- qemu: ---\n${qemu.split("\n").slice(-10).join("\n")}` : "")
  );
}

/** A node of the lab's inventory as the server's API reports it (the fields the lab shows). */
export interface LabNode {
  id: string;
  macs: string[];
  hostname?: string;
  profile?: string;
  state: string;
}

/** The lab server's inventory, through its API from inside the lab namespace (`nodes list`). */
export function labNodes(state: LabState): LabNode[] {
  const token = readFileSync(join(state.stateDir, "admin-token"), "utf8").trim();
  const out = runCli(
    ["nodes", "list", "--json", "--url", `http://${LAB_SERVER_ADDRESS}`, "--token", token],
    "reading the inventory",
    state.namespace,
  );
  const parsed: unknown = JSON.parse(out);
  if (!Array.isArray(parsed)) throw new LabError(`nodes list --json printed ${out.slice(0, 200)}`);
  return parsed as LabNode[];
}

/** Snapshot of a lab for `lab status`, without waiting. */
export async function labStatus(
  stateDir: string,
): Promise<{ state: LabState; serverRunning: boolean; machines: MachineProgress[] } | undefined> {
  const state = readLabState(stateDir);
  if (!state) return undefined;
  // A snapshot cannot know when a milestone happened; only the times `lab up` recorded are shown.
  const machines = await watchLab(state, { timeoutMs: 0, stampNew: false });
  return { state, serverRunning: alive(state.server), machines };
}

async function stopProcess(proc: RecordedProcess | undefined): Promise<void> {
  if (!alive(proc)) return;
  try {
    process.kill(proc!.pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 50 && alive(proc); i++) await sleep(100);
  if (alive(proc)) {
    try {
      process.kill(proc!.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

/**
 * Remove everything `labUp` made: machines, server, foreign DHCP server, namespaces (with their
 * bridge and taps), and the state directory. Safe to run twice, and after a half-finished `up`.
 */
export async function labDown(options: {
  stateDir: string;
  namespace: string;
  say?: (line: string) => void;
}): Promise<void> {
  const say = options.say ?? (() => {});
  const state = readLabState(options.stateDir);
  const namespaces = new Set([options.namespace, `${options.namespace}-dhcp`.slice(0, 30)]);
  if (state) {
    namespaces.add(state.namespace);
    if (state.foreignNamespace) namespaces.add(state.foreignNamespace);
    for (const m of state.machines) {
      await stopProcess(m.process);
      // A BMC's machine first: ipmi_sim would otherwise be asked nothing, but its QEMU outlives it.
      if (m.bmc) await stopProcess(bmcMachineProcess(m.bmc));
      await stopProcess(m.bmcProcess);
    }
    await stopProcess(state.redfishBmc);
    // The server gets SIGTERM and time to stop cleanly (its store is in the state directory).
    await stopProcess(state.server);
    await stopProcess(state.foreignDhcp);
    await stopProcess(state.routerAdvertiser);
  }
  for (const ns of namespaces) {
    if (namespaceExists(ns)) {
      destroyLabNetwork(ns);
      say(`removed network namespace ${ns}`);
    }
  }
  // Only a directory the lab made (it has lab.json) is removed whole.
  if (state || existsSync(join(options.stateDir, STATE_FILE))) {
    rmSync(options.stateDir, { recursive: true, force: true });
    say(`removed ${options.stateDir}`);
  }
}
