import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import {
  ARM64_LAB_MACHINE,
  FALLBACK_LAB_MACHINE,
  HTTP_BOOT_LAB_MACHINE,
  LAB_SERVER_ADDRESS,
  SECURE_BOOT_LAB_MACHINES,
  SEED_LAB_MACHINES,
} from "../../src/lab/lab-config.js";
import {
  bootMachineAgain,
  describeProgress,
  labDown,
  labNodes,
  labUp,
  machineSerialTail,
  stopMachine,
  watchLab,
  type Lab,
  type LabNode,
  type LabOptions,
  type LabState,
  type MachineProgress,
} from "../../src/lab/lab.js";
import { LabFirmware, findFirmware, type Accelerator, type LabMachine } from "../../src/lab/machines.js";
import { findArm64Image } from "../../src/lab/initrd.js";
import { namespaceExists } from "../../src/lab/network.js";
import { Milestone, plainText } from "../../src/lab/progress.js";
import { repo } from "../support/daemon.js";
import { isCI, requireBinaries } from "../support/netns.js";
import type { BootAttemptView } from "../../src/timeline/attempt.js";

/**
 * End to end on real firmware: QEMU machines PXE-boot through the real DHCP, TFTP and HTTP of
 * `centra-pxe serve` (run inside a lab namespace) into the lab initrd, which prints the kernel
 * parameters it got and calls back. Under TCG (no KVM) a boot takes 30-60 s; the machines of one
 * lab boot in parallel.
 */

const BOOT_TIMEOUT_MS = 7 * 60_000;
let accelerator: Accelerator | undefined;
let labCounter = 0;

function firmwarePresent(t: TestContext): boolean {
  const fw = findFirmware();
  const missing = [
    fw.ipxeVirtioRom,
    fw.ovmfCode,
    fw.ovmfVarsTemplate,
    "/usr/lib/ipxe/undionly.kpxe",
    "/usr/lib/ipxe/ipxe.efi",
  ].filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const why = `missing firmware ${missing.join(", ")} (scripts/bootstrap installs ipxe, ipxe-qemu, ovmf)`;
  if (isCI) throw new Error(why);
  t.skip(why);
  return false;
}

interface LabRun {
  progress: Map<string, MachineProgress>;
  serverLog: string;
  stateDir: string;
  /** The server's inventory after the boots, through its API. */
  nodes: LabNode[];
  state: LabState;
  lab: Lab;
}

/** Bring a lab up with `machines`, follow it until every machine is done, and tear it down after the test. */
async function bootLab(
  t: TestContext,
  machines: readonly LabMachine[],
  dhcpMode: "server" | "proxy",
  extra: Partial<LabOptions> = {},
): Promise<LabRun | undefined> {
  if (
    !requireBinaries(t, "ip", "qemu-system-x86_64", "busybox", ...(dhcpMode === "proxy" ? ["dnsmasq"] : [])) ||
    !firmwarePresent(t)
  )
    return undefined;
  const stateDir = mkdtempSync(join(tmpdir(), "centra-e2e-lab-"));
  const namespace = `ce2e-${process.pid}-${labCounter++}`;
  t.after(() => labDown({ stateDir, namespace }));
  const started = Date.now();
  const lab = await labUp({
    stateDir,
    namespace,
    machines,
    dhcpMode,
    ...extra,
    ...(accelerator ? { accelerator } : {}),
    say: (line) => t.diagnostic(line),
  });
  accelerator = lab.state.accelerator;
  const progress = await watchLab(lab, {
    timeoutMs: BOOT_TIMEOUT_MS,
    onMilestone: (p, m) => t.diagnostic(`${p.machine.name} ${m} at ${p.times[m]?.toFixed(1)} s`),
  });
  t.diagnostic(`all machines done in ${((Date.now() - started) / 1000).toFixed(1)} s (${accelerator})`);
  for (const p of progress) t.diagnostic(describeProgress(p));
  const serverLog = readFileSync(join(stateDir, "server.log"), "utf8");
  return {
    progress: new Map(progress.map((p) => [p.machine.name, p])),
    serverLog,
    stateDir,
    nodes: labNodes(lab.state),
    state: lab.state,
    lab,
  };
}

function failureReport(p: MachineProgress, what: string): string {
  return `${p.machine.name} (${p.machine.firmware}) ${what}\n${describeProgress(p)}\n--- serial console, last lines ---\n${machineSerialTail(p.machine, 40)}`;
}

/**
 * The machine reached the lab initrd with its profile's parameters and a callback token, and the
 * callback reached the server: it answered 200 and the node is `provisioned` in its inventory.
 */
function assertBootedAsRegistered(run: LabRun, name: string): void {
  const p = run.progress.get(name);
  assert.ok(p, `no machine ${name}`);
  const expect = p.machine.expect;
  assert.ok("profile" in expect);
  assert.ok(p.report.reached.has(Milestone.Initrd), failureReport(p, "never reached the lab initrd"));
  assert.equal(p.report.params["centra.profile"], expect.profile, failureReport(p, "booted with the wrong profile"));
  assert.equal(p.report.params["centra.hostname"], expect.hostname, failureReport(p, "booted with the wrong hostname"));
  assert.match(p.report.params["centra.token"] ?? "", /^\S{16,}$/, failureReport(p, "booted without a callback token"));
  assert.ok(p.report.reached.has(Milestone.CalledBack), failureReport(p, "did not call back"));
  assert.equal(p.report.callbackStatus, 200, failureReport(p, "callback refused"));
  const node = run.nodes.find((n) => n.macs.includes(p.machine.mac));
  assert.equal(node?.state, "provisioned", failureReport(p, `inventory: ${JSON.stringify(node)}`));
}

const SECOND_BOOT_TIMEOUT_MS = 3 * 60_000;

/** Image requests (kernels, initrds) the lab server has answered so far, from its /metrics, read inside the lab namespace. */
function imageRequestsServed(state: LabState): number {
  const fetchMetrics = `fetch("http://${LAB_SERVER_ADDRESS}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })`;
  const result = spawnSync("ip", ["netns", "exec", state.namespace, process.execPath, "-e", fetchMetrics], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(result.status, 0, `reading /metrics failed: ${result.stderr}`);
  let total = 0;
  for (const m of result.stdout.matchAll(/^centra_pxe_http_requests_total\{kind="image",status="\d+"\} (\d+)$/gm))
    total += Number(m[1]);
  return total;
}

/** A GET of the lab server's API (with the lab's admin token), from inside the lab namespace. */
function labApi<T>(state: LabState, path: string): T {
  const token = readFileSync(join(state.stateDir, "admin-token"), "utf8").trim();
  const get = `fetch(${JSON.stringify(`http://${LAB_SERVER_ADDRESS}/api/v1${path}`)}, { headers: { authorization: "Bearer ${token}" } }).then(async (r) => { const t = await r.text(); if (!r.ok) { console.error(r.status, t); process.exit(1); } process.stdout.write(t); }, (e) => { console.error(String(e)); process.exit(1); })`;
  const result = spawnSync("ip", ["netns", "exec", state.namespace, process.execPath, "-e", get], {
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(result.status, 0, `GET ${path} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** A machine's boot attempts, newest first, and the newest with its steps. */
function bootsOf(run: LabRun, name: string): { boots: BootAttemptView[]; newest: BootAttemptView } {
  const mac = run.progress.get(name)!.machine.mac;
  const { boots } = labApi<{ boots: BootAttemptView[] }>(run.state, `/nodes/${mac}/boots`);
  assert.ok(boots.length > 0, `no boot attempt of ${name} ${mac} in the timeline`);
  return { boots, newest: labApi<BootAttemptView>(run.state, `/nodes/${mac}/boots/${boots[0]!.attempt}`) };
}

/** Steps in a word or two each: `dhcp REQUEST→ACK`, `tftp ipxe.efi completed`, `http kernel 200`, `lifecycle timeout`. */
function stepWords(attempt: BootAttemptView): string[] {
  return (attempt.steps ?? []).map((s) => {
    const step = s as unknown as Record<string, unknown>;
    if (step.source === "dhcp") return `dhcp ${step.message}→${step.reply ?? "-"}${step.bootClient ? "" : " (os)"}`;
    if (step.source === "tftp") return `tftp ${step.file} ${step.outcome}`;
    if (step.source === "http") return `http ${step.kind} ${step.complete ? step.status : "cut"}`;
    return `lifecycle ${step.kind}`;
  });
}

/**
 * Issue 15: the machine's one boot, as the server's timeline joined it from what DHCP, TFTP (UEFI
 * PXE only: the BIOS machine's iPXE ROM needs none), HTTP and the callback saw, in boot order,
 * judged `installed`.
 */
function assertCompleteTimeline(t: TestContext, run: LabRun, name: string, viaTftp: boolean): void {
  const { boots, newest } = bootsOf(run, name);
  const words = stepWords(newest);
  t.diagnostic(`${name} timeline (attempt ${newest.attempt}, ${newest.verdict}): ${words.join(" | ")}`);
  assert.equal(boots.length, 1, `${name}: one boot, one attempt: ${JSON.stringify(boots)}`);
  assert.equal(newest.verdict, "installed", `${name}: ${newest.reason}`);
  assert.equal(newest.address, FIXED_ADDRESS_OF[name]);
  const order = [
    words.findIndex((w) => w.endsWith("REQUEST→ACK")),
    ...(viaTftp ? [words.findIndex((w) => /^tftp ipxe\.efi completed$/.test(w))] : []),
    words.indexOf("http entry-script 200"),
    words.indexOf("http machine-script 200"),
    words.indexOf("http kernel 200"),
    words.indexOf("http initrd 200"),
    words.indexOf("lifecycle callback-succeeded"),
  ];
  assert.ok(
    order.every((i) => i >= 0),
    `${name}: a step is missing: ${words.join(" | ")}`,
  );
  assert.deepEqual(
    [...order].sort((a, b) => a - b),
    order,
    `${name}: steps out of order: ${words.join(" | ")}`,
  );
  assert.deepEqual(
    newest.phases.map((p) => p.phase),
    ["dhcp", ...(viaTftp ? ["tftp"] : []), "scripts", "kernel", "initrd", "install"],
  );
}

/** The server's JSON log lines from byte `offset` on. */
function serverLogLinesSince(run: LabRun, offset: number): Record<string, unknown>[] {
  const text = readFileSync(join(run.stateDir, "server.log")).subarray(offset).toString("utf8");
  return text.split("\n").flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

async function waitForSerial(p: MachineProgress, pattern: RegExp, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    if (pattern.test(plainText(readFileSync(p.machine.serialLog, "latin1")))) return true;
  }
  return false;
}

/**
 * Issue 6's last step: a machine that called back (`provisioned`) is powered on again (same MAC,
 * firmware and UEFI variables) and its PXE boot goes to its local disk: the server answers its
 * machine script with the local-disk decision, the machine runs it (the lab VMs have no disk, so
 * BIOS's sanboot fails into the script's failure block; UEFI's `exit` hands back to OVMF), and not
 * one kernel or initrd is downloaded. Every other machine is off meanwhile, so the server's image
 * request count must not move at all.
 */
async function assertNextBootIsLocalDisk(t: TestContext, run: LabRun, names: readonly string[]): Promise<void> {
  for (const m of run.state.machines) await stopMachine(run.lab, m.name);
  const logOffset = readFileSync(join(run.stateDir, "server.log")).length;
  const imagesBefore = imageRequestsServed(run.state);
  // The first boots fetched kernels and initrds: a count of 0 here would mean the metric is not read.
  assert.ok(imagesBefore >= 2 * names.length, `image requests before the second boots: ${imagesBefore}`);
  const started = Date.now();
  const machines = [];
  for (const name of names) machines.push(await bootMachineAgain(run.lab, name));
  try {
    const progress = await watchLab(
      { state: { ...run.state, machines }, exits: run.lab.exits },
      {
        timeoutMs: SECOND_BOOT_TIMEOUT_MS,
        onMilestone: (p, m) => t.diagnostic(`${p.machine.name} second boot: ${m} at ${p.times[m]?.toFixed(1)} s`),
      },
    );
    for (const p of progress) {
      assert.ok(
        p.report.reached.has(Milestone.LocalDisk),
        failureReport(p, "second boot: did not get the local-disk script"),
      );
      // What the script does next shows on the console. BIOS: sanboot of the first disk, which
      // fails (the VM has none) into the script's failure block. UEFI: `exit` succeeds (no failure
      // block in between) and iPXE ends ("No more network devices"), handing back to OVMF.
      const next =
        p.machine.firmware === LabFirmware.BiosIpxeRom
          ? /Centra PXE: booting from the local disk\nBooting from SAN device 0x80\n[\s\S]*Centra PXE: failed while booting from the local disk/
          : /Centra PXE: booting from the local disk\s*\nNo more network devices/;
      assert.ok(
        await waitForSerial(p, next, 30_000),
        failureReport(p, `second boot: the console never showed ${next}`),
      );
      const serial = plainText(readFileSync(p.machine.serialLog, "latin1"));
      if (p.machine.firmware !== LabFirmware.BiosIpxeRom)
        assert.doesNotMatch(
          serial,
          /failed while booting from the local disk/,
          failureReport(p, "second boot: UEFI exit failed"),
        );
      assert.doesNotMatch(
        serial,
        /\/boot\/(images|nixos)\/|\/(kernel|initrd|bzImage)\b/,
        failureReport(p, "second boot: the console shows an image download"),
      );
      assert.ok(!p.report.reached.has(Milestone.Kernel), failureReport(p, "second boot: a kernel started"));
    }
  } finally {
    for (const name of names) await stopMachine(run.lab, name);
  }
  t.diagnostic(
    `second boots done in ${((Date.now() - started) / 1000).toFixed(1)} s; image requests served ${imagesBefore} before`,
  );

  // The server's side: each machine's script requests were answered with the local-disk
  // decision (from its fixed address), never an image; and no image file was requested at all.
  const decisions = serverLogLinesSince(run, logOffset).filter((l) => l.msg === "boot script");
  for (const m of machines) {
    const mine = decisions.filter((l) => String(l.mac).toLowerCase() === m.mac);
    assert.ok(
      mine.length > 0,
      `no boot script decision logged for ${m.name} ${m.mac} on its second boot:\n${decisions.map((l) => JSON.stringify(l)).join("\n")}`,
    );
    for (const l of mine) {
      assert.equal(l.boot, "localdisk", `${m.name} second boot decision: ${JSON.stringify(l)}`);
      assert.ok(
        String(l.remote).endsWith(FIXED_ADDRESS_OF[m.name]!),
        `${m.name} second boot came from ${String(l.remote)}: ${JSON.stringify(l)}`,
      );
    }
  }
  assert.equal(
    imageRequestsServed(run.state),
    imagesBefore,
    "image files (kernel, initrd) were requested during the second boots",
  );
  // The local-disk boots changed nothing in the inventory.
  const nodes = labNodes(run.state);
  for (const m of machines)
    assert.equal(nodes.find((n) => n.macs.includes(m.mac))?.state, "provisioned", `${m.name} after its second boot`);
}

const FIXED_ADDRESS_OF: Record<string, string> = {
  node01: "10.0.100.50",
  node02: "10.0.100.64",
  node05: "10.0.100.71",
};

test("BIOS (SeaBIOS + iPXE ROM) and UEFI (OVMF PXE, ipxe.efi over TFTP) boot to the lab initrd; an unknown MAC meets the menu", {
  timeout: 10 * 60_000,
}, async (t) => {
  const run = await bootLab(t, SEED_LAB_MACHINES, "server");
  if (!run) return;
  assertBootedAsRegistered(run, "node01");
  assertBootedAsRegistered(run, "node02");
  assertCompleteTimeline(t, run, "node01", false);
  assertCompleteTimeline(t, run, "node02", true);
  // Registered machines get their fixed addresses from our DHCP server.
  assert.equal(run.progress.get("node01")!.report.address, "10.0.100.50");
  assert.equal(run.progress.get("node02")!.report.address, "10.0.100.64");
  // node02 fetched its bootloader by TFTP: OVMF's PXE names the NBP it downloaded.
  const node02Serial = plainText(readFileSync(run.progress.get("node02")!.machine.serialLog, "latin1"));
  assert.match(node02Serial, /NBP filename is ipxe\.efi/);
  assert.match(node02Serial, /NBP file downloaded successfully/);

  const node03 = run.progress.get("node03")!;
  assert.ok(node03.report.reached.has(Milestone.Menu), failureReport(node03, "did not show the menu"));
  const menu = plainText(readFileSync(node03.machine.serialLog, "latin1"));
  // The seed's three menu items.
  for (const item of ["Control Plane Node", "Worker Node", "All-in-One Node"])
    assert.ok(menu.includes(item), failureReport(node03, `menu without "${item}"`));
  assert.ok(!node03.report.reached.has(Milestone.Initrd), "an unknown machine must not boot an image before a choice");

  await assertNextBootIsLocalDisk(t, run, ["node01", "node02"]);
  // The second boots are attempts of their own, judged local-disk; the installs stay as they were.
  for (const name of ["node01", "node02"]) {
    const { boots } = bootsOf(run, name);
    assert.deepEqual(
      boots.map((b) => b.verdict),
      ["local-disk", "installed"],
      `${name}: ${JSON.stringify(boots.map((b) => [b.verdict, b.reason]))}`,
    );
  }
});

test("a machine whose initrd never calls back is flagged stuck after the kernel, and alerted", {
  timeout: 10 * 60_000,
}, async (t) => {
  // One BIOS machine (the quickest boot), its callback sent to a port nobody answers, a short timeout.
  const machine = SEED_LAB_MACHINES.find((m) => m.firmware === LabFirmware.BiosIpxeRom && "profile" in m.expect)!;
  const run = await bootLab(t, [machine], "server", {
    provisioning: { timeout: "30s", apiUrl: `http://${LAB_SERVER_ADDRESS}:9/api/v1` },
  });
  if (!run) return;
  const p = run.progress.get(machine.name)!;
  assert.ok(p.report.reached.has(Milestone.Initrd), failureReport(p, "never reached the lab initrd"));
  assert.ok(!p.report.reached.has(Milestone.CalledBack), failureReport(p, "called back after all"));
  // The deadline runs 30 s from the install boot; the sweep looks every 7.5 s.
  const deadline = Date.now() + 120_000;
  let node = labNodes(run.state).find((n) => n.macs.includes(machine.mac));
  while (node?.state !== "failed" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    node = labNodes(run.state).find((n) => n.macs.includes(machine.mac));
  }
  assert.equal(node?.state, "failed", `inventory: ${JSON.stringify(node)}`);
  const { newest } = bootsOf(run, machine.name);
  const words = stepWords(newest);
  t.diagnostic(`${machine.name} timeline (${newest.verdict}: ${newest.reason}): ${words.join(" | ")}`);
  assert.equal(newest.verdict, "stuck-after-kernel", newest.reason);
  assert.ok(newest.final);
  for (const step of ["http kernel 200", "http initrd 200", "lifecycle timeout"])
    assert.ok(words.includes(step), `${step} in ${words.join(" | ")}`);
  assert.ok(!words.includes("lifecycle callback-succeeded"));
  const { alerts } = labApi<{ alerts: { labels: Record<string, string> }[] }>(run.state, "/alerts");
  assert.ok(
    alerts.some((a) => a.labels.alertname === "CentraPxeProvisioningFailed" && a.labels.mac === machine.mac),
    JSON.stringify(alerts),
  );
});

test("UEFI HTTP boot: OVMF with PXE off fetches ipxe.efi over HTTP, no TFTP at all", {
  timeout: 10 * 60_000,
}, async (t) => {
  const run = await bootLab(t, [HTTP_BOOT_LAB_MACHINE], "server");
  if (!run) return;
  assertBootedAsRegistered(run, HTTP_BOOT_LAB_MACHINE.name);
  const serial = plainText(readFileSync(run.progress.get(HTTP_BOOT_LAB_MACHINE.name)!.machine.serialLog, "latin1"));
  assert.match(serial, /Start HTTP Boot over IPv4/);
  assert.match(serial, /URI: http:\/\/10\.0\.100\.10\/boot\/ipxe\/ipxe\.efi/);
  assert.doesNotMatch(serial, /Start PXE over IPv4/);
  // Nothing from this machine's address reached the TFTP server.
  const address = run.progress.get(HTTP_BOOT_LAB_MACHINE.name)!.report.address!;
  const tftpLines = run.serverLog.split("\n").filter((l) => l.includes('"part":"tftp"') && l.includes(address));
  assert.deepEqual(tftpLines, [], "HTTP boot must not touch TFTP");

  // `lab down` leaves nothing behind, and a second run is a no-op (the test's own cleanup runs it again).
  await labDown({ stateDir: run.stateDir, namespace: run.state.namespace });
  await labDown({ stateDir: run.stateDir, namespace: run.state.namespace });
  assert.ok(!namespaceExists(run.state.namespace), "namespace removed");
  assert.ok(!existsSync(run.stateDir), "state directory removed");
  for (const proc of [run.state.server, ...run.state.machines.map((m) => m.process)]) {
    if (!proc) continue;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
    } catch {
      /* gone */
    }
    // A recycled PID running something else is not ours.
    assert.ok(!cmdline.includes(proc.marker), `process ${proc.pid} (${proc.marker}) still running`);
  }
});

test("proxyDHCP: a foreign DHCP server (dnsmasq, addresses only) beside ours in proxy mode boots BIOS and UEFI", {
  timeout: 10 * 60_000,
}, async (t) => {
  const machines = SEED_LAB_MACHINES.filter((m) => "profile" in m.expect);
  const run = await bootLab(t, machines, "proxy");
  if (!run) return;
  const leases = readFileSync(join(run.stateDir, "foreign-dhcp.leases"), "utf8");
  for (const m of machines) {
    assertBootedAsRegistered(run, m.name);
    const p = run.progress.get(m.name)!;
    // The address came from dnsmasq (its lease file has it), not from our server.
    assert.ok(
      p.report.address && leases.includes(`${m.mac} ${p.report.address}`),
      failureReport(p, `address ${p.report.address} is not one of dnsmasq's leases:\n${leases}`),
    );
  }
});

/** Debian's signed chain and OVMF's Secure Boot build: scripts/bootstrap installs shim-signed, grub-efi-amd64-signed, ovmf. */
function secureBootPresent(t: TestContext): boolean {
  const fw = findFirmware();
  const missing = [
    fw.ovmfSecureBootCode,
    fw.ovmfSecureBootVarsTemplate,
    "/usr/lib/shim/shimx64.efi.signed",
    "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
  ].filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const why = `missing ${missing.join(", ")} (scripts/bootstrap installs shim-signed, grub-efi-amd64-signed, ovmf)`;
  if (isCI) throw new Error(why);
  t.skip(why);
  return false;
}

test("Secure Boot: OVMF with Microsoft's keys boots shim → grub → Debian's signed kernel for a secureBoot node, and refuses iPXE", {
  timeout: 10 * 60_000,
}, async (t) => {
  if (!secureBootPresent(t)) return;
  const run = await bootLab(t, SECURE_BOOT_LAB_MACHINES, "server");
  if (!run) return;
  const [signed, unsigned] = SECURE_BOOT_LAB_MACHINES.map((m) => run.progress.get(m.name)!);
  assertBootedAsRegistered(run, signed!.machine.name);
  const serial = plainText(readFileSync(signed!.machine.serialLog, "latin1"));
  // DHCP answered shim, shim fetched grub, grub our per-machine config, and no iPXE ran at all.
  assert.match(serial, /NBP filename is shimx64\.efi/, failureReport(signed!, "was not given shim"));
  assert.match(serial, /Welcome to GRUB!/, failureReport(signed!, "grub did not start"));
  assert.doesNotMatch(serial, /iPXE/, failureReport(signed!, "iPXE ran on a Secure Boot machine"));
  // Secure Boot really was on: the kernel says so, and the initrd read the firmware's variable.
  assert.match(serial, /secureboot: Secure boot enabled/, failureReport(signed!, "kernel: Secure Boot not enabled"));
  assert.equal(signed!.report.secureBoot, 1, failureReport(signed!, "initrd: SecureBoot variable is not 1"));
  assert.match(serial, /centra-lab: lockdown .*\[integrity\]/, failureReport(signed!, "kernel not locked down"));
  // The grub config was decided by the lifecycle for the machine's own address, over TFTP.
  const decisions = run.serverLog
    .split("\n")
    .filter((l) => l.includes('"msg":"boot script"') && l.includes('"loader":"grub"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(
    decisions.some(
      (d) => d.mac === signed!.machine.mac && d.boot === "image" && String(d.remote).endsWith(FIXED_ADDRESS_OF.node05!),
    ),
    `no grub decision for ${signed!.machine.mac} from its own address:\n${JSON.stringify(decisions)}`,
  );

  // Everything after shim came by TFTP (grub has no http): the image's transfers, for the record.
  const imageTransfers = run.serverLog
    .split("\n")
    .filter((l) => l.includes('"msg":"tftp transfer completed"') && l.includes("/boot/images/"));
  assert.equal(imageTransfers.length, 2, `kernel and initrd over TFTP:\n${imageTransfers.join("\n")}`);
  for (const line of imageTransfers) {
    const { file, bytes, blksize, windowsize, ms } = JSON.parse(line) as Record<string, unknown>;
    t.diagnostic(
      `tftp ${String(file)}: ${String(bytes)} bytes, blksize ${String(blksize)}, windowsize ${String(windowsize)}, ${String(ms)} ms`,
    );
  }

  // The negative case: the same firmware given iPXE (its node is not marked secureBoot) refuses it.
  const refused = plainText(readFileSync(unsigned!.machine.serialLog, "latin1"));
  assert.match(refused, /NBP filename is ipxe\.efi/, failureReport(unsigned!, "was not given iPXE"));
  assert.match(refused, /failed to load .*: Access Denied/, failureReport(unsigned!, "firmware did not refuse iPXE"));
  assert.ok(!unsigned!.report.reached.has(Milestone.Kernel), failureReport(unsigned!, "a kernel started"));
});

/** The vendored iPXE source (CI clones the repository next to `shared`). */
const IPXE_SOURCE = process.env.CENTRA_PXE_IPXE_SOURCE || join(repo, "../shared/vendor/ipxe-src.tar.xz");

test("ARM64: AAVMF PXE-boots through DHCP arch 11 → our ipxe-arm64.efi → its profile's arm64 kernel and initrd, and calls back", {
  timeout: 20 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "qemu-system-aarch64", "aarch64-linux-gnu-gcc", "make", "perl")) return;
  const missing = [findFirmware().aavmfCode, findFirmware().aavmfVarsTemplate, IPXE_SOURCE].filter(
    (p) => !existsSync(p),
  );
  let image = "";
  try {
    image = findArm64Image().kernel;
  } catch (error) {
    missing.push((error as Error).message);
  }
  if (missing.length > 0) {
    const why = `missing ${missing.join(", ")} (scripts/bootstrap installs qemu-efi-aarch64 and fetches the arm64 image)`;
    if (isCI) throw new Error(why);
    t.skip(why);
    return;
  }
  t.diagnostic(`arm64 kernel ${image}`);
  const run = await bootLab(t, [ARM64_LAB_MACHINE], "server", {
    ipxeSource: IPXE_SOURCE,
    // A cache that outlives the run (e.g. in /var/tmp) saves the cross-compile on the next one.
    ...(process.env.CENTRA_PXE_IPXE_CACHE ? { ipxeCacheDir: process.env.CENTRA_PXE_IPXE_CACHE } : {}),
  });
  if (!run) return;
  assertBootedAsRegistered(run, ARM64_LAB_MACHINE.name);
  const p = run.progress.get(ARM64_LAB_MACHINE.name)!;
  const serial = plainText(readFileSync(p.machine.serialLog, "latin1"));
  assert.match(
    serial,
    /NBP filename is ipxe-arm64\.efi/,
    failureReport(p, "DHCP did not answer arch 11 with ipxe-arm64.efi"),
  );
  // The machine script handed it the arm64 image, on ARM's console; the kernel that ran is arm64.
  const decision = run.serverLog
    .split("\n")
    .filter((l) => l.includes('"msg":"boot script"') && l.includes(ARM64_LAB_MACHINE.mac))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((d) => d.boot === "image");
  assert.equal(decision?.buildarch, "arm64", JSON.stringify(decision));
  assert.match(String(decision?.image), /^nixos-arm64\//, JSON.stringify(decision));
  assert.match(serial, /centra-lab: initrd started, kernel \S+-arm64/, failureReport(p, "not the arm64 kernel"));
  assert.match(serial, /console \[ttyAMA0\] enabled/, failureReport(p, "no ttyAMA0 console"));
});

test("Boot chain fallback: a UEFI machine whose attempt stalls before its script gets snponly.efi next time, on its timeline", {
  timeout: 10 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "ip", "qemu-system-x86_64", "busybox") || !firmwarePresent(t)) return;
  const stateDir = mkdtempSync(join(tmpdir(), "centra-e2e-lab-"));
  const namespace = `ce2e-${process.pid}-${labCounter++}`;
  t.after(() => labDown({ stateDir, namespace }));
  const lab = await labUp({
    stateDir,
    namespace,
    machines: [FALLBACK_LAB_MACHINE],
    dhcpMode: "server",
    // Seconds, not the default minute: the cut-off attempt and the next one are a few seconds apart here.
    attemptWindow: "5s",
    ...(accelerator ? { accelerator } : {}),
    say: (line) => t.diagnostic(line),
  });
  accelerator = lab.state.accelerator;
  const machine = lab.state.machines[0]!;
  // The stall: the firmware got ipxe.efi, and the machine goes dark before iPXE asks for any script
  // (as one whose NIC hangs iPXE at "initialising devices" until someone power-cycles it).
  const first = (await watchUntil(machine.serialLog, /NBP file downloaded successfully/, 180_000)) ?? "";
  await stopMachine(lab, machine.name);
  assert.match(first, /NBP filename is ipxe\.efi/, `first attempt:\n${first.slice(-2000)}`);
  assert.doesNotMatch(plainText(readFileSync(machine.serialLog, "latin1")), /boot\.ipxe/, "no script before the cut");

  const again = await bootMachineAgain(lab, machine.name);
  const [progress] = await watchLab(
    { state: { ...lab.state, machines: [again] }, exits: lab.exits },
    {
      timeoutMs: 5 * 60_000,
      onMilestone: (q, m) => t.diagnostic(`${q.machine.name} second attempt: ${m} at ${q.times[m]?.toFixed(1)} s`),
    },
  );
  assert.ok(progress, "no progress for the second attempt");
  const p = progress;
  assert.ok(p.report.reached.has(Milestone.CalledBack), failureReport(p, "second attempt did not call back"));
  assert.equal(p.report.callbackStatus, 200, failureReport(p, "callback refused"));
  const serial = plainText(readFileSync(again.serialLog, "latin1"));
  assert.match(serial, /NBP filename is snponly\.efi/, failureReport(p, "second attempt did not get snponly.efi"));
  // The reason, with the node, in the server's log; the same goes on the node's timeline (boot-fallback).
  const log = readFileSync(join(stateDir, "server.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes("boot attempt stalled"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(log.length, 1, JSON.stringify(log));
  assert.deepEqual(
    { from: log[0]!.from, to: log[0]!.to, mac: log[0]!.mac },
    { from: "ipxe.efi", to: "snponly.efi", mac: FALLBACK_LAB_MACHINE.mac },
  );
  assert.match(String(log[0]!.nodeId), /^n-/);
  assert.equal(labNodes(lab.state).find((n) => n.macs.includes(FALLBACK_LAB_MACHINE.mac))?.state, "provisioned");
});

/** The serial log's text once `pattern` shows in it, or undefined after `timeoutMs`. */
async function watchUntil(serialLog: string, pattern: RegExp, timeoutMs: number): Promise<string | undefined> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    const text = existsSync(serialLog) ? plainText(readFileSync(serialLog, "latin1")) : "";
    if (pattern.test(text)) return text;
  }
  return undefined;
}
