import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { ARM64_LAB_MACHINE } from "../../src/lab/lab-config.js";
import { findFirmware } from "../../src/lab/machines.js";
import { findArm64Image } from "../../src/lab/initrd.js";
import { plainText } from "../../src/lab/progress.js";
import { isCI, requireBinaries } from "../support/netns.js";
import { bootLab, failureReport, assertBootedAsRegistered, IPXE_SOURCE } from "./lab-harness.js";

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
