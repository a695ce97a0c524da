// test-lane: vm
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { HTTP_BOOT_LAB_MACHINE, LAB_SERVER_ADDRESS, SEED_LAB_MACHINES } from "../../src/lab/lab-config.js";
import { LabFirmware } from "../../src/lab/machines.js";
import { plainText } from "../../src/lab/progress.js";
import { isCI, requireBinaries } from "../support/netns.js";
import {
  assertBootedAsRegistered,
  bootLab,
  bootsOf,
  failureReport,
  IPXE_SOURCE,
  labApi,
  type LabRun,
  stepWords,
} from "./lab-harness.js";
import type { BootAttemptView } from "../../src/timeline/attempt.js";

/**
 * `centra-pxe lab up --https` (issue 17): the lab makes its CA with `tls init`, turns `http.tls`
 * on and builds our iPXE with that CA embedded (`ipxe build`). Two machines, the fewest that show
 * both firmware paths: node01, SeaBIOS running our build as its NIC's option ROM, and node04, OVMF
 * HTTP boot given the CA through fw_cfg, which downloads our ipxe.efi over https://. Both must
 * reach the initrd and call back, and the server's own timeline must hold not one plain-HTTP
 * request for either: script, kernel and initrd all came over TLS.
 *
 * The compile (~3 min of CPU the first time) goes to a cache that outlives the run, like
 * `lab up`'s (CENTRA_PXE_IPXE_CACHE picks another); a later run only relinks for its new CA.
 */

const BIOS = SEED_LAB_MACHINES[0]!;
const UEFI_HTTP = HTTP_BOOT_LAB_MACHINE;
const IPXE_CACHE = process.env.CENTRA_PXE_IPXE_CACHE || "/var/cache/centra-pxe/ipxe-build";

test("lab up --https: SeaBIOS with our iPXE ROM and OVMF HTTP boot with our CA boot over https:// only and call back", {
  timeout: 30 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "make", "gcc", "perl", "openssl")) return;
  if (!existsSync(IPXE_SOURCE)) {
    const why = `missing the iPXE source ${IPXE_SOURCE} (../shared/vendor/ipxe-src.tar.xz, see IPXE.md)`;
    if (isCI) throw new Error(why);
    t.skip(why);
    return;
  }
  assert.equal(BIOS.firmware, LabFirmware.BiosIpxeRom);
  const run = await bootLab(t, [BIOS, UEFI_HTTP], "server", {
    https: true,
    ipxeSource: IPXE_SOURCE,
    ipxeCacheDir: IPXE_CACHE,
  });
  if (!run) return;
  assert.ok(run.state.https, "the lab recorded its TLS files");
  for (const m of run.state.machines) assert.equal(m.overHttps, true, `${m.name} is announced as booting over HTTPS`);

  for (const machine of [BIOS, UEFI_HTTP]) assertBootedAsRegistered(run, machine.name);

  const bios = run.progress.get(BIOS.name)!;
  const biosSerial = plainText(readFileSync(bios.machine.serialLog, "latin1"));
  // Our build's embedded script announces itself; Debian's ROM would have shown its autoboot.
  assert.match(biosSerial, /Centra PXE iPXE build [0-9a-f]{12} on pcbios\//, failureReport(bios, "not our iPXE ROM"));
  const uefi = run.progress.get(UEFI_HTTP.name)!;
  const uefiSerial = plainText(readFileSync(uefi.machine.serialLog, "latin1"));
  assert.match(
    uefiSerial,
    new RegExp(`URI: https://${LAB_SERVER_ADDRESS.replace(/\./g, "\\.")}/boot/ipxe/ipxe\\.efi`),
    failureReport(uefi, "the firmware was not given an https:// boot URL"),
  );
  assert.match(uefiSerial, /Centra PXE iPXE build [0-9a-f]{12} on efi\//, failureReport(uefi, "not our ipxe.efi"));

  assertOnlyHttps(t, run, BIOS.name, ["entry-script", "machine-script", "kernel", "initrd"]);
  assertOnlyHttps(t, run, UEFI_HTTP.name, ["bootloader", "entry-script", "machine-script", "kernel", "initrd"]);
});

/**
 * The server's timeline of the machine's boot (what its HTTP listeners saw, joined to the MAC
 * through DHCP): each of `kinds` was served, every HTTP request came in on the TLS listener, and
 * nothing went over TFTP.
 */
function assertOnlyHttps(
  t: { diagnostic: (line: string) => void },
  run: LabRun,
  name: string,
  kinds: readonly string[],
): void {
  // Every attempt the server holds for the machine, not only the newest: a plain download in an
  // earlier one counts too.
  const { boots } = bootsOf(run, name);
  const mac = run.progress.get(name)!.machine.mac;
  const attempts = boots.map((b) => labApi<BootAttemptView>(run.state, `/nodes/${mac}/boots/${b.attempt}`));
  const steps = attempts.flatMap((a) => (a.steps ?? []) as unknown as Record<string, unknown>[]);
  for (const attempt of attempts) {
    const own = (attempt.steps ?? []) as unknown as Record<string, unknown>[];
    t.diagnostic(
      `${name} attempt ${attempt.attempt} (${attempt.verdict}): ${stepWords(attempt)
        .map((w, i) => (own[i]?.source === "http" ? `${w} ${String(own[i]?.scheme)}` : w))
        .join(" | ")}`,
    );
  }
  const http = steps.filter((s) => s.source === "http");
  for (const kind of kinds)
    assert.ok(
      http.some((s) => s.kind === kind && s.status === 200),
      `${name}: no ${kind} served: ${JSON.stringify(http)}`,
    );
  const plain = http.filter((s) => s.scheme !== "https");
  assert.deepEqual(plain, [], `${name}: requests over plain HTTP`);
  assert.deepEqual(
    steps.filter((s) => s.source === "tftp"),
    [],
    `${name}: TFTP downloads`,
  );
}
