import { LAB_MARKER } from "./initrd.js";

/**
 * What a lab machine has reached, read from its serial console. Pure: text in, milestones out, so
 * the lab's live view, `lab status` and the e2e test all read a boot the same way.
 *
 * The texts matched are what the firmware and iPXE print (SeaBIOS sercon, OVMF's serial console,
 * iPXE 1.0.0+git-20190125 as packaged by Debian 12) and what the lab initrd prints.
 */

export enum Milestone {
  Address = "address",
  Bootloader = "bootloader",
  Script = "script",
  Menu = "menu",
  /** The server's local-disk script ran: an installed machine leaves the network boot for its disk. */
  LocalDisk = "local-disk",
  Kernel = "kernel",
  Initrd = "initrd",
  CalledBack = "called-back",
  Failed = "failed",
}

/** In boot order; the live view prints them in this order. */
export const MILESTONE_ORDER: readonly Milestone[] = [
  Milestone.Address,
  Milestone.Bootloader,
  Milestone.Script,
  Milestone.Menu,
  Milestone.LocalDisk,
  Milestone.Kernel,
  Milestone.Initrd,
  Milestone.CalledBack,
  Milestone.Failed,
];

export interface BootReport {
  reached: Set<Milestone>;
  /** The address the firmware (or iPXE) took by DHCP. */
  address?: string;
  /** `centra.*` kernel parameters as the initrd printed them. */
  params: Record<string, string>;
  /** The HTTP status the server answered the callback with. */
  callbackStatus?: number;
  /** What the initrd read from the firmware's `SecureBoot` variable: 1 on, 0 off (UEFI only). */
  secureBoot?: number;
  /** A line that explains a failure (a final one when `reached` has Failed, else a hint). */
  failure?: string;
}

/** Terminal escape sequences and backspaces, which firmware consoles sprinkle through their text. */
export function plainText(serial: string): string {
  let text = serial
    .replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, "")
    .replace(/\x1b[c()][0-9A-Za-z]?/g, "")
    .replace(/\r/g, "");
  // iPXE's countdown erases with "\b \b" runs; apply each backspace to the character before it.
  for (let previous = ""; previous !== text; ) {
    previous = text;
    text = text.replace(/[^\x08\n]\x08/g, "");
  }
  return text.replace(/\x08/g, "");
}

/**
 * Lines that explain a failure. `final` ones leave the machine stuck (it will not power off by
 * itself); the others may be followed by a retry that succeeds, so they are hints until the VM ends.
 */
const FAILURES: readonly { pattern: RegExp; final: boolean }[] = [
  { pattern: new RegExp(`${LAB_MARKER} FAILED.*`), final: true },
  { pattern: /No bootable device\./, final: true },
  // OVMF ends in its shell when every boot option failed.
  { pattern: /^Shell> ?$/m, final: true },
  { pattern: /Kernel panic - not syncing.*/, final: true },
  // OVMF with Secure Boot refusing an unsigned (or untrusted) bootloader.
  { pattern: /BdsDxe: failed to load .*: Access Denied/, final: true },
  // iPXE errors end with their ipxe.org explanation URL, e.g. "Connection timed out (http://ipxe.org/4c0a6035)".
  { pattern: /^.*\(https?:\/\/ipxe\.org\/[0-9a-f]{8}\).*$/m, final: false },
  { pattern: /PXE-E\d\d.*/, final: false },
  { pattern: /Error: .*/, final: false },
];

export function readBoot(serial: string): BootReport {
  const text = plainText(serial);
  const reached = new Set<Milestone>();
  const report: BootReport = { reached, params: {} };

  // iPXE: "net0: 10.0.100.157/255.255.255.0 gw …"; OVMF PXE: "Station IP address is 10.0.100.157".
  const address =
    /net\d+: (\d+\.\d+\.\d+\.\d+)\//.exec(text) ?? /Station IP address is (\d+\.\d+\.\d+\.\d+)/.exec(text);
  if (address) {
    reached.add(Milestone.Address);
    report.address = address[1];
  }
  // The BIOS machine's iPXE is its option ROM; a UEFI machine loads ipxe.efi by TFTP (PXE) or HTTP.
  if (
    /NBP file downloaded successfully|iPXE initialising devices|iPXE \(PCI [0-9a-f:.]+\) starting execution/.test(text)
  )
    reached.add(Milestone.Bootloader);
  // iPXE's entry script, the machine's script our own build chains to directly, or the grub config
  // of a Secure Boot machine (boot/grub.ts).
  if (
    /boot\.ipxe\.\.\. ok|machine\.ipxe\S*\.\.\. ok|\[script\]|Centra PXE: loading the kernel and initrd over TFTP/.test(
      text,
    )
  )
    reached.add(Milestone.Script);
  if (/Centra Cloud - Bare-Metal Provisioning/.test(text)) reached.add(Milestone.Menu);
  // The echo of the local-disk script (boot/ipxe.ts), just before its sanboot (BIOS) or exit (UEFI).
  if (/Centra PXE: booting from the local disk/.test(text)) reached.add(Milestone.LocalDisk);
  // The kernel's first words: the EFI stub, the BIOS real-mode setup, or its banner on ttyS0.
  if (/EFI stub: |Probing EDD|Linux version \d/.test(text)) reached.add(Milestone.Kernel);
  if (text.includes(`${LAB_MARKER} initrd started`)) reached.add(Milestone.Initrd);
  for (const m of text.matchAll(new RegExp(`${LAB_MARKER} param (centra\\.[a-z0-9_.-]+)=(\\S*)`, "g")))
    report.params[m[1]!] = m[2]!;
  const secureBoot = new RegExp(`${LAB_MARKER} efi secureboot (\\d+)`).exec(text);
  if (secureBoot) report.secureBoot = Number(secureBoot[1]);
  const callback = new RegExp(`${LAB_MARKER} callback answered HTTP (\\d{3})`).exec(text);
  if (callback) {
    reached.add(Milestone.CalledBack);
    report.callbackStatus = Number(callback[1]);
  }
  for (const { pattern, final } of FAILURES) {
    const m = pattern.exec(text);
    if (!m) continue;
    report.failure ??= m[0].trim();
    if (final) {
      reached.add(Milestone.Failed);
      report.failure = m[0].trim();
      break;
    }
  }
  return report;
}

/** The last `lines` lines of a serial log, cleaned, for a failure message. */
export function serialTail(serial: string, lines = 40): string {
  return plainText(serial)
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(-lines)
    .join("\n");
}
