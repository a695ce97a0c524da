import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { HTTP_BOOT_LAB_MACHINE, SEED_LAB_MACHINES } from "../../src/lab/lab-config.js";
import { describeProgress, labDown, labNodes, labUp, machineSerialTail, watchLab, type LabNode, type LabState, type MachineProgress } from "../../src/lab/lab.js";
import { findFirmware, type Accelerator, type LabMachine } from "../../src/lab/machines.js";
import { namespaceExists } from "../../src/lab/network.js";
import { Milestone, plainText } from "../../src/lab/progress.js";
import { isCI, requireBinaries } from "../support/netns.js";

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
  const missing = [fw.ipxeVirtioRom, fw.ovmfCode, fw.ovmfVarsTemplate, "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi"].filter((p) => !existsSync(p));
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
}

/** Bring a lab up with `machines`, follow it until every machine is done, and tear it down after the test. */
async function bootLab(t: TestContext, machines: readonly LabMachine[], dhcpMode: "server" | "proxy"): Promise<LabRun | undefined> {
  if (!requireBinaries(t, "ip", "qemu-system-x86_64", "busybox", ...(dhcpMode === "proxy" ? ["dnsmasq"] : [])) || !firmwarePresent(t)) return undefined;
  const stateDir = mkdtempSync(join(tmpdir(), "centra-e2e-lab-"));
  const namespace = `ce2e-${process.pid}-${labCounter++}`;
  t.after(() => labDown({ stateDir, namespace }));
  const started = Date.now();
  const lab = await labUp({ stateDir, namespace, machines, dhcpMode, ...(accelerator ? { accelerator } : {}), say: (line) => t.diagnostic(line) });
  accelerator = lab.state.accelerator;
  const progress = await watchLab(lab, {
    timeoutMs: BOOT_TIMEOUT_MS,
    onMilestone: (p, m) => t.diagnostic(`${p.machine.name} ${m} at ${p.times[m]?.toFixed(1)} s`),
  });
  t.diagnostic(`all machines done in ${((Date.now() - started) / 1000).toFixed(1)} s (${accelerator})`);
  for (const p of progress) t.diagnostic(describeProgress(p));
  const serverLog = readFileSync(join(stateDir, "server.log"), "utf8");
  return { progress: new Map(progress.map((p) => [p.machine.name, p])), serverLog, stateDir, nodes: labNodes(lab.state), state: lab.state };
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

test("BIOS (SeaBIOS + iPXE ROM) and UEFI (OVMF PXE, ipxe.efi over TFTP) boot to the lab initrd; an unknown MAC meets the menu", { timeout: 10 * 60_000 }, async (t) => {
  const run = await bootLab(t, SEED_LAB_MACHINES, "server");
  if (!run) return;
  assertBootedAsRegistered(run, "node01");
  assertBootedAsRegistered(run, "node02");
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
  for (const item of ["Control Plane Node", "Worker Node", "All-in-One Node"]) assert.ok(menu.includes(item), failureReport(node03, `menu without "${item}"`));
  assert.ok(!node03.report.reached.has(Milestone.Initrd), "an unknown machine must not boot an image before a choice");
});

test("UEFI HTTP boot: OVMF with PXE off fetches ipxe.efi over HTTP, no TFTP at all", { timeout: 10 * 60_000 }, async (t) => {
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

test("proxyDHCP: a foreign DHCP server (dnsmasq, addresses only) beside ours in proxy mode boots BIOS and UEFI", { timeout: 10 * 60_000 }, async (t) => {
  const machines = SEED_LAB_MACHINES.filter((m) => "profile" in m.expect);
  const run = await bootLab(t, machines, "proxy");
  if (!run) return;
  const leases = readFileSync(join(run.stateDir, "foreign-dhcp.leases"), "utf8");
  for (const m of machines) {
    assertBootedAsRegistered(run, m.name);
    const p = run.progress.get(m.name)!;
    // The address came from dnsmasq (its lease file has it), not from our server.
    assert.ok(p.report.address && leases.includes(`${m.mac} ${p.report.address}`), failureReport(p, `address ${p.report.address} is not one of dnsmasq's leases:\n${leases}`));
  }
});
