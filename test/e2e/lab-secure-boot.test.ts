import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { SECURE_BOOT_LAB_MACHINES } from "../../src/lab/lab-config.js";
import { Milestone, plainText } from "../../src/lab/progress.js";
import {
  bootLab,
  failureReport,
  assertBootedAsRegistered,
  FIXED_ADDRESS_OF,
  secureBootPresent,
} from "./lab-harness.js";

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
