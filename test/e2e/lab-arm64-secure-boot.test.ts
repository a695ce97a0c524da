import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ARM64_SECURE_BOOT_LAB_MACHINE, ARM64_LAB_IMAGE } from "../../src/lab/lab-config.js";
import { arm64Root, findArm64Image } from "../../src/lab/initrd.js";
import { findFirmware } from "../../src/lab/machines.js";
import { plainText } from "../../src/lab/progress.js";
import { isCI, requireBinaries } from "../support/netns.js";
import { assertBootedAsRegistered, bootLab, failureReport } from "./lab-harness.js";

/**
 * ARM64 with Secure Boot asked: one AAVMF VM with Secure Boot enforced and Microsoft's keys
 * (Debian's AAVMF_VARS.ms.fd), its node marked `secureBoot`. DHCP arch 11 is answered with
 * Debian's signed shimaa64.efi, shim loads the signed grubnetaa64, grub our per-machine config
 * (console ttyAMA0), and Debian's signed arm64 kernel runs the lab initrd, which calls back.
 */
test("ARM64 Secure Boot: AAVMF with Microsoft's keys boots shimaa64 → grubnetaa64 → the signed arm64 kernel, and calls back", {
  timeout: 15 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "qemu-system-aarch64")) return;
  const fw = findFirmware();
  const missing = [
    fw.aavmfSecureBootCode,
    fw.aavmfSecureBootVarsTemplate,
    join(arm64Root(), "usr/lib/shim/shimaa64.efi.signed"),
    join(arm64Root(), "usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"),
  ].filter((p) => !existsSync(p));
  try {
    findArm64Image();
  } catch (error) {
    missing.push((error as Error).message);
  }
  if (missing.length > 0) {
    const why = `missing ${missing.join(", ")} (scripts/bootstrap installs qemu-efi-aarch64 and unpacks Debian's arm64 kernel, busybox, shim and grub)`;
    if (isCI) throw new Error(why);
    t.skip(why);
    return;
  }
  const machine = ARM64_SECURE_BOOT_LAB_MACHINE;
  const run = await bootLab(t, [machine], "server");
  if (!run) return;
  assertBootedAsRegistered(run, machine.name);
  const p = run.progress.get(machine.name)!;
  const serial = plainText(readFileSync(p.machine.serialLog, "latin1"));
  assert.match(serial, /NBP filename is shimaa64\.efi/, failureReport(p, "DHCP did not answer arch 11 with shim"));
  assert.match(serial, /Welcome to GRUB!/, failureReport(p, "grub did not start"));
  assert.doesNotMatch(serial, /iPXE/, failureReport(p, "iPXE ran on a Secure Boot machine"));
  // Secure Boot was enforced: the kernel says so and the initrd read the firmware's variable.
  assert.match(serial, /[Ss]ecure boot enabled/, failureReport(p, "kernel: Secure Boot not enabled"));
  assert.equal(p.report.secureBoot, 1, failureReport(p, "initrd: SecureBoot variable is not 1"));
  assert.match(serial, /centra-lab: initrd started, kernel \S+-arm64/, failureReport(p, "not the arm64 kernel"));
  assert.match(serial, /console \[ttyAMA0\] enabled/, failureReport(p, "no ttyAMA0 console"));
  // grub asked for its config by $grub_cpu: the arm64 build of the image, decided by the lifecycle.
  const decision = run.serverLog
    .split("\n")
    .filter((l) => l.includes('"msg":"boot script"') && l.includes('"loader":"grub"') && l.includes(machine.mac))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((d) => d.boot === "image");
  assert.equal(decision?.buildarch, "arm64", JSON.stringify(decision));
  assert.equal(decision?.arch, "arm64", JSON.stringify(decision));
  assert.match(String(decision?.image), new RegExp(`^${ARM64_LAB_IMAGE}/`), JSON.stringify(decision));
  const kernelOverTftp = run.serverLog
    .split("\n")
    .some((l) => l.includes('"msg":"tftp transfer completed"') && l.includes(`/boot/images/${ARM64_LAB_IMAGE}@arm64/`));
  assert.ok(kernelOverTftp, "the arm64 build's kernel and initrd over TFTP");
});
