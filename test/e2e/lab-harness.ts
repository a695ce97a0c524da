import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { LAB_SERVER_ADDRESS } from "../../src/lab/lab-config.js";
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

export const BOOT_TIMEOUT_MS = 7 * 60_000;
let accelerator: Accelerator | undefined;
let labCounter = 0;

export function firmwarePresent(t: TestContext): boolean {
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

export interface LabRun {
  progress: Map<string, MachineProgress>;
  serverLog: string;
  stateDir: string;
  /** The server's inventory after the boots, through its API. */
  nodes: LabNode[];
  state: LabState;
  lab: Lab;
}

/** Bring a lab up with `machines`, follow it until every machine is done, and tear it down after the test. */
export async function bootLab(
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

export function failureReport(p: MachineProgress, what: string): string {
  return `${p.machine.name} (${p.machine.firmware}) ${what}\n${describeProgress(p)}\n--- serial console, last lines ---\n${machineSerialTail(p.machine, 40)}`;
}

/**
 * The machine reached the lab initrd with its profile's parameters and a callback token, and the
 * callback reached the server: it answered 200 and the node is `provisioned` in its inventory.
 */
export function assertBootedAsRegistered(run: LabRun, name: string): void {
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

export const SECOND_BOOT_TIMEOUT_MS = 3 * 60_000;

/** Image requests (kernels, initrds) the lab server has answered so far, from its /metrics, read inside the lab namespace. */
export function imageRequestsServed(state: LabState): number {
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
export function labApi<T>(state: LabState, path: string): T {
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
export function bootsOf(run: LabRun, name: string): { boots: BootAttemptView[]; newest: BootAttemptView } {
  const mac = run.progress.get(name)!.machine.mac;
  const { boots } = labApi<{ boots: BootAttemptView[] }>(run.state, `/nodes/${mac}/boots`);
  assert.ok(boots.length > 0, `no boot attempt of ${name} ${mac} in the timeline`);
  return { boots, newest: labApi<BootAttemptView>(run.state, `/nodes/${mac}/boots/${boots[0]!.attempt}`) };
}

/** Steps in a word or two each: `dhcp REQUEST→ACK`, `tftp ipxe.efi completed`, `http kernel 200`, `lifecycle timeout`. */
export function stepWords(attempt: BootAttemptView): string[] {
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
export function assertCompleteTimeline(t: TestContext, run: LabRun, name: string, viaTftp: boolean): void {
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
export function serverLogLinesSince(run: LabRun, offset: number): Record<string, unknown>[] {
  const text = readFileSync(join(run.stateDir, "server.log")).subarray(offset).toString("utf8");
  return text.split("\n").flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

export async function waitForSerial(p: MachineProgress, pattern: RegExp, timeoutMs: number): Promise<boolean> {
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
export async function assertNextBootIsLocalDisk(t: TestContext, run: LabRun, names: readonly string[]): Promise<void> {
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

export const FIXED_ADDRESS_OF: Record<string, string> = {
  node01: "10.0.100.50",
  node02: "10.0.100.64",
  node05: "10.0.100.71",
};

/** Debian's signed chain and OVMF's Secure Boot build: scripts/bootstrap installs shim-signed, grub-efi-amd64-signed, ovmf. */
export function secureBootPresent(t: TestContext): boolean {
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

/** The vendored iPXE source (CI clones the repository next to `shared`). */
export const IPXE_SOURCE = process.env.CENTRA_PXE_IPXE_SOURCE || join(repo, "../shared/vendor/ipxe-src.tar.xz");

/** The serial log's text once `pattern` shows in it, or undefined after `timeoutMs`. */
export async function watchUntil(serialLog: string, pattern: RegExp, timeoutMs: number): Promise<string | undefined> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    const text = existsSync(serialLog) ? plainText(readFileSync(serialLog, "latin1")) : "";
    if (pattern.test(text)) return text;
  }
  return undefined;
}
