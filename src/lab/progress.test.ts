import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Milestone, plainText, readBoot } from "./progress.js";

/**
 * Serial consoles of a real lab run (`centra-pxe lab up --http-boot`, TCG), kernel log lines
 * dropped and the callback token replaced. Regenerate by copying `machines/*.serial.log` of a lab.
 */
const fixture = (name: string) =>
  readFileSync(new URL(`../../testdata/lab/${name}.serial.txt`, import.meta.url), "latin1");

const FULL_BOOT = [
  Milestone.Address,
  Milestone.Bootloader,
  Milestone.Script,
  Milestone.Kernel,
  Milestone.Initrd,
  Milestone.CalledBack,
];

for (const [name, address, profile, hostname] of [
  ["bios-ipxe-rom", "10.0.100.50", "control-plane", "control-plane-01"],
  ["uefi-pxe", "10.0.100.64", "worker", "worker-04"],
  ["uefi-http", "10.0.100.70", "all-in-one", "all-in-one-01"],
] as const) {
  test(`${name}: every milestone up to the callback, the address and the centra.* parameters`, () => {
    const report = readBoot(fixture(name));
    assert.deepEqual([...report.reached].sort(), [...FULL_BOOT].sort());
    assert.equal(report.address, address);
    assert.equal(report.params["centra.profile"], profile);
    assert.equal(report.params["centra.hostname"], hostname);
    assert.equal(report.params["centra.api"], "http://10.0.100.10/api/v1");
    assert.equal(report.callbackStatus, 200);
  });
}

test("our own iPXE build (OVMF PXE, bench/boot): it chains straight to machine.ipxe, which is the script milestone", () => {
  const serial = fixture("uefi-pxe-built");
  assert.doesNotMatch(serial, /boot\.ipxe\.\.\. ok/, "no entry script: the milestone must come from machine.ipxe");
  const report = readBoot(serial);
  assert.deepEqual(
    [...report.reached].sort(),
    [Milestone.Address, Milestone.Bootloader, Milestone.Script, Milestone.Kernel, Milestone.Initrd].sort(),
  );
  assert.equal(report.address, "10.0.100.100");
});

test("an unknown machine reaches the menu, not a kernel; iPXE errors after it are hints, not final", () => {
  const report = readBoot(fixture("bios-menu"));
  assert.ok(report.reached.has(Milestone.Menu));
  assert.ok(!report.reached.has(Milestone.Kernel));
  assert.ok(!report.reached.has(Milestone.Failed));
  assert.match(report.failure ?? "", /ipxe\.org\/1d852039/);
});

test("a provisioned machine's next boot: the local-disk script, no kernel (BIOS: sanboot fails on a diskless VM)", () => {
  // The second boot of node01 in the e2e lab (its serial console, blank lines dropped).
  const report = readBoot(fixture("bios-localdisk"));
  assert.deepEqual(
    [...report.reached].sort(),
    [Milestone.Address, Milestone.Bootloader, Milestone.Script, Milestone.LocalDisk].sort(),
  );
  assert.equal(report.address, "10.0.100.50");
  assert.match(report.failure ?? "", /ipxe\.org\/1d852039/);
});

test("final failures: OVMF's shell, the initrd's FAILED line, SeaBIOS with nothing to boot", () => {
  assert.equal(readBoot(">>Start PXE over IPv4.\r\n  PXE-E16: No valid offer received.\r\nShell> ").failure, "Shell>");
  assert.ok(readBoot("centra-lab: FAILED no DHCP answer on eth0\n").reached.has(Milestone.Failed));
  assert.ok(
    readBoot("Boot failed: could not read the boot disk\n\nNo bootable device.\n").reached.has(Milestone.Failed),
  );
  assert.ok(!readBoot("Connection timed out (http://ipxe.org/4c0a6035)\n").reached.has(Milestone.Failed));
});

test("plain text: terminal escapes gone, iPXE's backspace countdown applied", () => {
  assert.equal(plainText("\x1b[0;1miPXE\x1b[0m ok\r\n"), "iPXE ok\n");
  assert.equal(plainText("line...\x08 \x08\x08 \x08net0: up"), "line.net0: up");
});

test("Secure Boot: the initrd's SecureBoot reading, and a firmware refusing its bootloader", () => {
  const on = readBoot("centra-lab: initrd started, kernel 6.1\ncentra-lab: efi secureboot 1\n");
  assert.equal(on.secureBoot, 1);
  const refused = readBoot(
    'NBP filename is ipxe.efi\r\nBdsDxe: failed to load Boot0001 "UEFI PXEv4 (MAC:525400123463)" from PciRoot(0x0): Access Denied\r\n',
  );
  assert.ok(refused.reached.has(Milestone.Failed));
  assert.match(refused.failure ?? "", /Access Denied/);
  assert.ok(readBoot("echo\nCentra PXE: loading the kernel and initrd over TFTP\n").reached.has(Milestone.Script));
});
