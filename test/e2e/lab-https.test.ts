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
  watchUntil,
} from "./lab-harness.js";
import { bootMachineAgain, labNodes, machineSerialTail, stopMachine } from "../../src/lab/lab.js";
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
    // Their next boots, once installed, show `localBoot: http-404` on both firmware paths.
    localBoot: "http-404",
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
    // Its own URL (localBoot: http-404), which serves ipxe.efi while it is being installed.
    new RegExp(
      `URI: https://${LAB_SERVER_ADDRESS.replace(/\./g, "\\.")}/boot/ipxe/machine/52-54-00-12-34-61/ipxe\\.efi`,
    ),
    failureReport(uefi, "the firmware was not given an https:// boot URL"),
  );
  assert.match(uefiSerial, /Centra PXE iPXE build [0-9a-f]{12} on efi\//, failureReport(uefi, "not our ipxe.efi"));

  // Our build's embedded script chains straight to the machine's script: no entry script.
  assertOnlyHttps(t, run, BIOS.name, ["machine-script", "kernel", "initrd"]);
  assertOnlyHttps(t, run, UEFI_HTTP.name, ["bootloader", "machine-script", "kernel", "initrd"]);

  // Installed now: the next boot of each is answered 404 and leaves the network boot at once.
  for (const m of run.state.machines) await stopMachine(run.lab, m.name);
  const [bios2, uefi2] = [await bootMachineAgain(run.lab, BIOS.name), await bootMachineAgain(run.lab, UEFI_HTTP.name)];
  try {
    const biosText = await watchUntil(bios2.serialLog, /no boot script for this machine \(HTTP 404\)/, 180_000);
    assert.ok(biosText, `node01's iPXE did not leave on the 404:\n${machineSerialTail(bios2, 30)}`);
    assert.doesNotMatch(biosText, /attempt \d of 3 failed/, "a 404 is not retried");
    assert.doesNotMatch(biosText, /\/kernel|\/initrd/, "no image on the second boot");
    const uefiText = await watchUntil(uefi2.serialLog, /404 Not Found/, 180_000);
    assert.ok(uefiText, `node04's firmware did not get a 404:\n${machineSerialTail(uefi2, 30)}`);
    assert.doesNotMatch(uefiText, /Centra PXE iPXE build/, "the firmware never loaded iPXE");
  } finally {
    for (const m of run.state.machines) await stopMachine(run.lab, m.name);
  }
  for (const name of [BIOS.name, UEFI_HTTP.name]) {
    const { newest } = bootsOf(run, name);
    const words = stepWords(newest);
    t.diagnostic(`${name} second boot: ${words.join(" | ")}`);
    const expected = name === BIOS.name ? "http machine-script 404" : "http bootloader 404";
    assert.ok(words.includes(expected), `${name}: ${words.join(" | ")}`);
    assert.ok(!words.some((w) => /^http (kernel|initrd)/.test(w)), `${name}: ${words.join(" | ")}`);
  }
  for (const n of labNodes(run.state)) assert.equal(n.state, "provisioned", JSON.stringify(n));
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
