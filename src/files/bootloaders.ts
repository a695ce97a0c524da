import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, stat } from "node:fs/promises";
import { join } from "node:path";
import { CentraError } from "../errors.js";

/**
 * The iPXE bootloaders Centra PXE hands to firmware (PRODUCT.md §3), installed from the system's
 * iPXE package, never downloaded. Debian's `ipxe` has the BIOS and x86-64 UEFI builds; the IA32 and
 * ARM64 ones come from elsewhere (`--bootloaders`) and are served only when present.
 */
export const BOOTLOADERS: readonly { name: string; kind: "pxe" | "efi"; required: boolean; why: string }[] = [
  { name: "undionly.kpxe", kind: "pxe", required: true, why: "BIOS PXE (DHCP arch 0)" },
  { name: "ipxe.efi", kind: "efi", required: true, why: "UEFI x86-64 (arch 7, 9, HTTP boot 16)" },
  { name: "snponly.efi", kind: "efi", required: false, why: "UEFI x86-64 using the firmware's own NIC driver" },
  { name: "undionly.kkpxe", kind: "pxe", required: false, why: "BIOS PXE keeping the PXE stack loaded" },
  { name: "ipxe.pxe", kind: "pxe", required: false, why: "BIOS PXE with iPXE's own NIC drivers" },
  { name: "ipxe-i386.efi", kind: "efi", required: false, why: "UEFI IA32 (arch 6)" },
  { name: "ipxe-arm64.efi", kind: "efi", required: false, why: "UEFI ARM64 (arch 11, HTTP boot 19)" },
];

export const DEFAULT_BOOTLOADER_SOURCE = "/usr/lib/ipxe";

/**
 * Debian's signed Secure Boot chain (README "Secure Boot"), installed beside iPXE when the packages
 * are there and never required. shim loads `grub<arch>.efi` from its own directory, so Debian's
 * netboot grub (built with its config prefix `/grub` on the TFTP server) goes in under that name.
 */
export const SIGNED_LOADERS: readonly { name: string; from: string; why: string }[] = [
  {
    name: "shimx64.efi",
    from: "/usr/lib/shim/shimx64.efi.signed",
    why: "Secure Boot UEFI x86-64: shim signed by Microsoft's UEFI CA (Debian shim-signed)",
  },
  {
    name: "grubx64.efi",
    from: "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
    why: "Secure Boot UEFI x86-64: netboot grub signed by Debian (grub-efi-amd64-signed)",
  },
  {
    name: "shimaa64.efi",
    from: "/usr/lib/shim/shimaa64.efi.signed",
    why: "Secure Boot UEFI ARM64: shim (Debian shim-signed:arm64)",
  },
  {
    name: "grubaa64.efi",
    from: "/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed",
    why: "Secure Boot UEFI ARM64: netboot grub (Debian grub-efi-arm64-signed)",
  },
];

/**
 * Is `bytes` plausibly the bootloader its name says? An EFI application is a PE image: "MZ", then
 * at the offset stored at 0x3c the "PE\0\0" signature. A PXE NBP has no magic, only a size: an
 * empty or tiny file is a failed copy or an HTML error page saved under the wrong name.
 */
export function checkBootloader(kind: "pxe" | "efi" | "rom", bytes: Buffer): string | undefined {
  if (bytes.length < 1024) return `only ${bytes.length} bytes, too small to be a bootloader`;
  // A PCI expansion ROM image starts with the 0x55 0xAA signature (PCI Firmware Specification 3.0 §5.1).
  if (kind === "rom")
    return bytes[0] === 0x55 && bytes[1] === 0xaa ? undefined : "is not an option ROM (no 55 AA signature)";
  if (kind === "efi") {
    if (bytes.toString("latin1", 0, 2) !== "MZ") return "is not a PE/EFI image (no MZ header)";
    const peOffset = bytes.readUInt32LE(0x3c);
    if (peOffset + 4 > bytes.length || bytes.toString("latin1", peOffset, peOffset + 4) !== "PE\0\0")
      return "is not a PE/EFI image (no PE signature)";
  } else if (bytes.toString("latin1", 0, 2) === "MZ" || bytes.toString("latin1", 0, 5).toLowerCase() === "<!doc") {
    return "looks like an EFI image or an HTML page, not a PXE bootloader";
  }
  return undefined;
}

export interface InstallReport {
  installed: string[];
  unchanged: string[];
  missing: string[];
}

/** The bootloaders of a source directory, read and checked, not yet written anywhere. */
export interface CheckedBootloaders {
  source: string;
  found: { name: string; bytes: Buffer }[];
  missing: string[];
}

/**
 * Read and check every bootloader of `source` before anything is written, so `init` fails with
 * every problem at once and leaves nothing behind. Fails when a required one is missing or any is
 * malformed (the source is not a directory: every required one is missing).
 */
export async function readBootloaders(
  source: string,
  signed: readonly { name: string; from: string }[] = [],
): Promise<CheckedBootloaders> {
  const checked: CheckedBootloaders = { source, found: [], missing: [] };
  const problems: string[] = [];
  for (const loader of BOOTLOADERS) {
    const from = join(source, loader.name);
    let bytes: Buffer;
    try {
      bytes = await readFile(from); // follows Debian's symlink ipxe.efi → /boot/ipxe.efi
    } catch {
      checked.missing.push(loader.name);
      if (loader.required)
        problems.push(`${from}: missing; it is needed for ${loader.why} (Debian: apt-get install ipxe)`);
      continue;
    }
    const problem = checkBootloader(loader.kind, bytes);
    if (problem) problems.push(`${from}: ${problem}`);
    else checked.found.push({ name: loader.name, bytes });
  }
  for (const loader of signed) {
    const bytes = await readFile(loader.from).catch(() => undefined);
    if (!bytes) continue; // optional: the Secure Boot packages are not installed
    const problem = checkBootloader("efi", bytes);
    if (problem) problems.push(`${loader.from}: ${problem}`);
    else checked.found.push({ name: loader.name, bytes });
  }
  if (problems.length) throw new CentraError("BOOTLOADERS", problems.join("\n"));
  return checked;
}

/**
 * Write checked bootloaders into `target`, each through a temporary file and a rename so a TFTP
 * read never sees half a file. Identical files are left alone, so running it again changes nothing.
 */
export async function writeBootloaders(checked: CheckedBootloaders, target: string): Promise<InstallReport> {
  await mkdir(target, { recursive: true });
  const report: InstallReport = { installed: [], unchanged: [], missing: [...checked.missing] };
  for (const { name, bytes } of checked.found) {
    const to = join(target, name);
    const existing = await readFile(to).catch(() => undefined);
    if (existing && sha256(existing) === sha256(bytes)) {
      report.unchanged.push(name);
      continue;
    }
    const temp = join(target, `.${name}.${randomBytes(4).toString("hex")}`);
    const handle = await open(temp, "wx");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, to);
    report.installed.push(name);
  }
  return report;
}

export async function installedBootloaders(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const loader of BOOTLOADERS) {
    const s = await stat(join(dir, loader.name)).catch(() => undefined);
    if (s?.isFile()) names.push(loader.name);
  }
  return names;
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}
