import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BmcEndpoint } from "../../src/bmc/client.js";
import { LAB_DISK_BANNER, type LabBmcType } from "../../src/lab/lab-bmc.js";
import { LAB_SERVER_ADDRESS, SEED_LAB_MACHINES } from "../../src/lab/lab-config.js";
import {
  type Lab,
  centraPxeCommand,
  describeProgress,
  labDown,
  labNodes,
  labUp,
  machineSerialTail,
  watchLab,
} from "../../src/lab/lab.js";
import { findFirmware } from "../../src/lab/machines.js";
import { namespaceExists } from "../../src/lab/network.js";
import { Milestone, plainText } from "../../src/lab/progress.js";
import { isCI, requireBinaries } from "../support/netns.js";

/**
 * Provisioning by power, end to end: a lab machine that is powered off behind its BMC (OpenIPMI's
 * ipmi_sim, or the lab's Redfish BMC) is provisioned by the server through it (`nodes provision
 * NODE --power`): a one-time network boot and a power cycle; it PXE-boots the lab initrd, calls back and powers itself off, and the
 * server sets its boot device back to disk; powered on again (through the BmcClient, in the
 * namespace) it boots its disk and not the network. The server recorded the IPMI machine's console
 * over SOL meanwhile; it is read back through the API. One BIOS machine per BMC type (~2 min each
 * under TCG).
 */

const BOOT_TIMEOUT_MS = 6 * 60_000;
const driver = join(dirname(fileURLToPath(import.meta.url)), "..", "support", "bmc-driver.ts");

function firmwarePresent(t: TestContext): boolean {
  const missing = [findFirmware().ipxeVirtioRom, "/usr/lib/ipxe/undionly.kpxe"].filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const why = `missing firmware ${missing.join(", ")} (scripts/bootstrap installs ipxe, ipxe-qemu)`;
  if (isCI) throw new Error(why);
  t.skip(why);
  return false;
}

/** A BmcClient operation, run inside the lab namespace where the BMC listens. */
function bmc<T>(lab: Lab, endpoint: BmcEndpoint, ...operation: string[]): T {
  const [node, ...nodeArgs] = centraPxeCommand();
  const loader = nodeArgs.slice(0, 2); // --import tsx
  const result = spawnSync(
    "ip",
    ["netns", "exec", lab.state.namespace, node!, ...loader, driver, JSON.stringify(endpoint), ...operation],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(result.status, 0, `BMC ${operation.join(" ")} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** A centra-pxe client command inside the lab namespace, against the lab server's API. */
function cli(lab: Lab, ...args: string[]): string {
  const token = readFileSync(join(lab.state.stateDir, "admin-token"), "utf8").trim();
  const command = centraPxeCommand();
  const result = spawnSync(
    "ip",
    [
      "netns",
      "exec",
      lab.state.namespace,
      ...command,
      ...args,
      "--url",
      `http://${LAB_SERVER_ADDRESS}`,
      "--token",
      token,
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  assert.equal(result.status, 0, `centra-pxe ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

async function waitFor(what: string, check: () => boolean, timeoutMs: number, lab: Lab): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      assert.fail(`timed out waiting for ${what}\n${machineSerialTail(lab.state.machines[0]!, 30)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function provisionByPower(t: TestContext, type: LabBmcType): Promise<{ lab: Lab; console?: string } | undefined> {
  if (!requireBinaries(t, "ip", "qemu-system-x86_64", "busybox", "ipmitool", ...(type === "ipmi" ? ["ipmi_sim"] : [])))
    return undefined;
  if (!firmwarePresent(t)) return undefined;
  const stateDir = mkdtempSync(join(tmpdir(), "centra-e2e-bmc-"));
  const namespace = `cbmc-${process.pid}-${type}`;
  t.after(() => labDown({ stateDir, namespace }));
  const machine = SEED_LAB_MACHINES[0]!; // node01: SeaBIOS + the iPXE ROM, registered as control-plane
  const lab = await labUp({
    stateDir,
    namespace,
    machines: [machine],
    dhcpMode: "server",
    bmc: type,
    say: (line) => t.diagnostic(line),
  });
  const m = lab.state.machines[0]!;
  const labBmc = m.bmc!;
  const endpoint: BmcEndpoint = {
    protocol: type,
    address: labBmc.address,
    port: labBmc.port,
    username: labBmc.username,
    password: readFileSync(labBmc.passwordFile, "utf8").trim(),
    ...(type === "redfish" ? { scheme: "http" as const } : {}),
  };
  assert.equal(bmc<string>(lab, endpoint, "power-status"), "off", "lab up --bmc leaves the machine powered off");

  const node = labNodes(lab.state).find((n) => n.macs.includes(machine.mac))!;
  // `nodes provision NODE --power`: provisioning, a one-time network boot read back, a power cycle;
  // the server then follows the node to its callback and sets the disk back.
  const started = Date.now();
  m.startedAt = started;
  const provisioned = JSON.parse(cli(lab, "nodes", "provision", node.id, "--power", "--json")) as {
    steps: { step: string; outcome: string }[];
  };
  assert.deepEqual(provisioned.steps.map((s) => `${s.step} ${s.outcome}`).sort(), [
    "boot-pxe ok",
    "power-cycle ok",
    "provision ok",
  ]);
  const [progress] = await watchLab(lab, {
    timeoutMs: BOOT_TIMEOUT_MS,
    onMilestone: (p, milestone) =>
      t.diagnostic(`${p.machine.name} ${milestone} at ${p.times[milestone]?.toFixed(1)} s`),
  });
  t.diagnostic(describeProgress(progress!));
  const failure = `\n${describeProgress(progress!)}\n${machineSerialTail(m, 40)}`;
  assert.ok(progress!.report.reached.has(Milestone.Address), `no DHCP address: the BMC did not netboot it${failure}`);
  assert.equal(progress!.report.params["centra.profile"], "control-plane", failure);
  assert.equal(progress!.report.callbackStatus, 200, `no successful callback${failure}`);
  t.diagnostic(`${type}: power on → callback in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // The lab initrd powers the machine off after its callback; the BMC sees it.
  await waitFor("the BMC to report power off", () => bmc<string>(lab, endpoint, "power-status") === "off", 60_000, lab);
  assert.equal(labNodes(lab.state).find((n) => n.id === node.id)?.state, "provisioned");

  // The server set the disk back once the callback came (its `boot-disk` step).
  await waitFor(
    "the server to set the boot device back to disk",
    () => bmc<{ device: string }>(lab, endpoint, "get-boot").device === "disk",
    60_000,
    lab,
  );
  // The server recorded the IPMI machine's console while it provisioned; read it through the API.
  const console = type === "ipmi" ? cli(lab, "nodes", "console", node.id, "--recorded") : undefined;

  // A power-on now boots the disk, not the network.
  bmc(lab, endpoint, "power", "on");
  await waitFor(
    "the disk's boot sector on the console",
    () => plainText(readFileSync(m.serialLog, "latin1")).includes(LAB_DISK_BANNER),
    120_000,
    lab,
  );
  const secondBoot = plainText(readFileSync(m.serialLog, "latin1"));
  assert.doesNotMatch(secondBoot, /Configuring \(net0/, "the second power-on did not touch the network");
  bmc(lab, endpoint, "power", "off");
  assert.equal(bmc<string>(lab, endpoint, "power-status"), "off");
  // `lab down` ends the BMCs and their machines with the rest.
  const bmcProcesses = [m.bmcProcess, lab.state.redfishBmc].filter((p) => p !== undefined);
  assert.equal(bmcProcesses.length, 1, "one BMC process for the machine");
  await labDown({ stateDir, namespace });
  assert.ok(!namespaceExists(namespace), "namespace removed");
  for (const proc of bmcProcesses) {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
    } catch {
      /* gone */
    }
    assert.ok(!cmdline.includes(proc.marker), `BMC process ${proc.pid} (${proc.marker}) still running`);
  }
  return { lab, ...(console !== undefined ? { console } : {}) };
}

test("IPMI (ipmi_sim + QEMU's ipmi-bmc-extern): PXE by power, callback, then the disk; SOL recorded the kernel's console", {
  timeout: 12 * 60_000,
}, async (t) => {
  const run = await provisionByPower(t, "ipmi");
  if (!run) return;
  assert.ok(run.console, "the console was recorded");
  // The lab initrd's own lines and the kernel's boot messages arrived over SOL, through the API.
  assert.match(
    run.console,
    /Linux version \d/,
    `kernel output missing from the recorded console:\n${run.console.slice(-2000)}`,
  );
  assert.match(run.console, /centra-lab: callback answered HTTP 200/);
});

test("Redfish (the lab's Redfish BMC over QMP): PXE by a Once override and power on, callback, then the disk", {
  timeout: 12 * 60_000,
}, async (t) => {
  await provisionByPower(t, "redfish");
});
