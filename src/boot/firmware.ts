import { httpOrigin } from "../config/primitives.js";
import { type BootChain, DEFAULT_BOOT_CHAIN } from "./boot-chain.js";
/**
 * Which firmware is asking, and which bootloader it gets (PRODUCT.md §3). Pure: the DHCP server
 * passes what the client said (options 93, 77, 60) and what is installed in `stateDir/ipxe`.
 */

/** IANA "Processor Architecture Types" (RFC 4578 §2.1 and its registry), as sent in option 93. */
export const Arch = {
  BiosX86: 0,
  EfiIa32: 6,
  EfiBc: 7,
  EfiX64: 9,
  EfiArm32: 10,
  EfiArm64: 11,
  EfiX86Http: 15,
  EfiX64Http: 16,
  EfiArm32Http: 18,
  EfiArm64Http: 19,
} as const;

export enum Firmware {
  Bios = "bios",
  EfiIa32 = "efi-ia32",
  EfiX64 = "efi-x64",
  EfiArm32 = "efi-arm32",
  EfiArm64 = "efi-arm64",
  EfiX86Http = "efi-x86-http",
  EfiX64Http = "efi-x64-http",
  EfiArm32Http = "efi-arm32-http",
  EfiArm64Http = "efi-arm64-http",
  /** Our iPXE, chainloaded: it gets the boot script, not a bootloader. */
  Ipxe = "ipxe",
  /** Option 93 carries a code this table does not know. */
  Unknown = "unknown",
  /** Not a network-boot client at all (an installed OS renewing its lease). */
  NotPxe = "not-pxe",
}

export interface ClientHints {
  /** Option 93, first code. */
  arch?: number;
  /** Option 77 classes. */
  userClasses: readonly string[];
  /** Option 60. */
  vendorClass?: string;
}

/** One firmware's row of the table: where its bootloader comes from. */
export interface FirmwareRow {
  firmware: Firmware;
  /** Bootloaders in order of preference. */
  bootloaders: readonly string[];
  /** UEFI HTTP boot: a URL instead of TFTP, and option 60 `HTTPClient` in the answer. */
  http: boolean;
  /** What an operator installs when none of `bootloaders` is there. */
  hint: string;
  /**
   * The signed chain a `secureBoot` machine gets instead (boot-chain.ts): shim, and the grub shim
   * loads from the same directory. Absent: this firmware cannot be answered with a signed chain.
   */
  secureBoot?: SignedChain;
}

/** Debian's signed loaders for one architecture, as `init` installs them into stateDir/ipxe. */
export interface SignedChain {
  /** What the firmware downloads: shim, signed by Microsoft's UEFI CA. */
  bootloader: string;
  /** Files shim fetches next from the same directory (grub, signed by Debian's key that shim embeds). */
  needs: readonly string[];
  hint: string;
}

/**
 * shim loads `grubx64.efi` from the directory it was itself loaded from (seen on OVMF: after
 * shimx64.efi it asks TFTP for revocations_sku.efi, revocations_sbat.efi, shim_certificate_0.efi,
 * all optional, then grubx64.efi); Debian's netboot grub (grubnetx64.efi.signed) is installed
 * under that name.
 */
const SIGNED_X64: SignedChain = {
  bootloader: "shimx64.efi",
  needs: ["grubx64.efi"],
  hint: "run `centra-pxe init` (Debian packages shim-signed and grub-efi-amd64-signed provide shimx64.efi and grubnetx64.efi)",
};
const SIGNED_ARM64: SignedChain = {
  bootloader: "shimaa64.efi",
  needs: ["grubaa64.efi"],
  hint: "install Debian's shim-signed:arm64 and grub-efi-arm64-signed, then run `centra-pxe init`",
};

const ARM64_HINT =
  "build or install an ARM64 iPXE (ipxe-arm64.efi, e.g. `make bin-arm64-efi/ipxe.efi` in the iPXE source) into stateDir/ipxe";
const ARM32_HINT = "install an ARM32 iPXE as ipxe-arm32.efi into stateDir/ipxe";

/** Option 93 code → its firmware and bootloaders: plain data the DHCP server is handed. */
export type FirmwareTable = ReadonlyMap<number, FirmwareRow>;

/** The §3 table as shipped. */
export const FIRMWARE_TABLE: FirmwareTable = new Map<number, FirmwareRow>([
  [
    Arch.BiosX86,
    {
      firmware: Firmware.Bios,
      bootloaders: ["undionly.kpxe"],
      http: false,
      hint: "run `centra-pxe init` (Debian package `ipxe` provides undionly.kpxe)",
    },
  ],
  [
    Arch.EfiIa32,
    {
      firmware: Firmware.EfiIa32,
      bootloaders: ["ipxe-i386.efi"],
      http: false,
      hint: "install a 32-bit UEFI iPXE as ipxe-i386.efi into stateDir/ipxe",
    },
  ],
  // 7 is "EFI BC" in the registry, but every x64 UEFI PXE ROM in the field sends 7, and some send 9.
  // snponly.efi is the fallback: it drives the firmware's own NIC driver, which always matches.
  [
    Arch.EfiBc,
    {
      firmware: Firmware.EfiX64,
      bootloaders: ["ipxe.efi", "snponly.efi"],
      http: false,
      hint: "run `centra-pxe init` (Debian package `ipxe` provides ipxe.efi)",
      secureBoot: SIGNED_X64,
    },
  ],
  [
    Arch.EfiX64,
    {
      firmware: Firmware.EfiX64,
      bootloaders: ["ipxe.efi", "snponly.efi"],
      http: false,
      hint: "run `centra-pxe init` (Debian package `ipxe` provides ipxe.efi)",
      secureBoot: SIGNED_X64,
    },
  ],
  [Arch.EfiArm32, { firmware: Firmware.EfiArm32, bootloaders: ["ipxe-arm32.efi"], http: false, hint: ARM32_HINT }],
  [
    Arch.EfiArm64,
    {
      firmware: Firmware.EfiArm64,
      bootloaders: ["ipxe-arm64.efi"],
      http: false,
      hint: ARM64_HINT,
      secureBoot: SIGNED_ARM64,
    },
  ],
  [
    Arch.EfiX86Http,
    {
      firmware: Firmware.EfiX86Http,
      bootloaders: ["ipxe-i386.efi"],
      http: true,
      hint: "install a 32-bit UEFI iPXE as ipxe-i386.efi into stateDir/ipxe",
    },
  ],
  [
    Arch.EfiX64Http,
    {
      firmware: Firmware.EfiX64Http,
      bootloaders: ["ipxe.efi", "snponly.efi"],
      http: true,
      hint: "run `centra-pxe init` (Debian package `ipxe` provides ipxe.efi)",
    },
  ],
  [
    Arch.EfiArm32Http,
    { firmware: Firmware.EfiArm32Http, bootloaders: ["ipxe-arm32.efi"], http: true, hint: ARM32_HINT },
  ],
  [
    Arch.EfiArm64Http,
    { firmware: Firmware.EfiArm64Http, bootloaders: ["ipxe-arm64.efi"], http: true, hint: ARM64_HINT },
  ],
]);

export function isIpxe(hints: ClientHints): boolean {
  return hints.userClasses.includes("iPXE");
}

/** A PXE or UEFI HTTP boot ROM (option 60), or our own iPXE. */
export function isNetworkBootClient(hints: ClientHints): boolean {
  const vendor = hints.vendorClass ?? "";
  return vendor.startsWith("PXEClient") || vendor.startsWith("HTTPClient") || isIpxe(hints);
}

export function detectFirmware(hints: ClientHints, table: FirmwareTable = FIRMWARE_TABLE): Firmware {
  if (isIpxe(hints)) return Firmware.Ipxe;
  if (!isNetworkBootClient(hints)) return Firmware.NotPxe;
  // PXE ROMs older than RFC 4578 omit option 93; they are all BIOS x86.
  if (hints.arch === undefined) return Firmware.Bios;
  return table.get(hints.arch)?.firmware ?? Firmware.Unknown;
}

/** What the DHCP answer tells the client to boot. */
export type BootDecision =
  | { kind: "tftp"; firmware: Firmware; filename: string }
  | {
      kind: "http";
      firmware: Firmware;
      url: string /** answer with option 60 `HTTPClient` (UEFI HTTP boot) */;
      httpClient: boolean;
    }
  /** No boot information: not a boot client, or nothing installed for it (`reason` says what to do). */
  | { kind: "none"; firmware: Firmware; reason: string };

/** Where the HTTP part serves bootloaders and the entry script (PRODUCT.md §3); `https` on http.tls.port. */
export function httpBootBase(serverAddress: string, httpPort: number, scheme: "http" | "https" = "http"): string {
  return `${httpOrigin(serverAddress, httpPort, scheme)}/boot/ipxe`;
}

export const ENTRY_SCRIPT = "boot.ipxe";

/**
 * The §3 table. `installed` holds the file names present in `stateDir/ipxe`; `httpBase` is
 * `httpBootBase(...)`; `table` the rows to decide by (the DHCP server is given it as data);
 * `chain` what the machine's profile or node asks for (boot-chain.ts).
 */
export function decideBoot(
  hints: ClientHints,
  installed: ReadonlySet<string>,
  httpBase: string,
  table: FirmwareTable = FIRMWARE_TABLE,
  /**
   * Where UEFI HTTP boot firmware fetches its bootloader: the https:// base when the site's
   * firmware trusts our CA (http.tls.uefiHttpBoot), else `httpBase`. iPXE always gets `httpBase`:
   * a stock iPXE trusts no CA of ours (our own build ignores the answer and chains by itself).
   */
  firmwareHttpBase: string = httpBase,
  chain: BootChain = DEFAULT_BOOT_CHAIN,
): BootDecision {
  const firmware = detectFirmware(hints, table);
  // iPXE asks again after being chainloaded; the script (not the bootloader again) breaks the loop.
  if (firmware === Firmware.Ipxe)
    return { kind: "http", firmware, url: `${httpBase}/${ENTRY_SCRIPT}`, httpClient: false };
  if (firmware === Firmware.NotPxe)
    return { kind: "none", firmware, reason: "not a network-boot client (no option 60 PXEClient/HTTPClient)" };
  const arch = hints.arch ?? Arch.BiosX86;
  const row = table.get(arch);
  if (!row) {
    return {
      kind: "none",
      firmware,
      reason: `client architecture ${arch} (option 93) has no bootloader in Centra PXE's table; supported: 0 BIOS, 6 UEFI IA32, 7/9 UEFI x64, 10 ARM32, 11 ARM64, 15/16/18/19 UEFI HTTP`,
    };
  }
  if (chain.secureBoot && firmware !== Firmware.Bios) return decideSignedBoot(row, installed);
  // The chain's iPXE flavour (boot-chain.ts), where this firmware has a choice of them (UEFI x86-64).
  const flavoured = chain.flavour !== undefined && row.bootloaders.includes("ipxe.efi");
  if (flavoured && chain.flavour === "http" && !row.http)
    return {
      kind: "none",
      firmware,
      reason: "boot chain `ipxe: http`: no PXE answer, so the firmware goes on to UEFI HTTP boot",
    };
  const preferred = flavoured && chain.flavour !== "http" ? [chain.flavour!, ...row.bootloaders] : row.bootloaders;
  const bootloader = preferred.find((name) => installed.has(name));
  if (!bootloader) {
    return {
      kind: "none",
      firmware,
      reason: `architecture ${arch} (${row.firmware}) needs ${row.bootloaders.join(" or ")}, which is not installed: ${row.hint}`,
    };
  }
  if (row.http) return { kind: "http", firmware, url: `${firmwareHttpBase}/${bootloader}`, httpClient: true };
  return { kind: "tftp", firmware, filename: bootloader };
}

/**
 * A `secureBoot` machine on UEFI: shim over TFTP, never iPXE (the firmware would refuse it with
 * "Access Denied"). UEFI HTTP boot is not offered: Debian's signed netboot grub has no `http`
 * module (only tftp; with Secure Boot's lockdown it loads no module from the network either), so
 * after an HTTP-booted shim it could fetch neither its config nor the kernel. Such a machine is
 * told to PXE boot instead; BIOS machines have no Secure Boot and keep iPXE.
 */
function decideSignedBoot(row: FirmwareRow, installed: ReadonlySet<string>): BootDecision {
  const { firmware } = row;
  if (!row.secureBoot)
    return {
      kind: "none",
      firmware,
      reason: `secureBoot is set for this machine, but ${firmware} has no signed boot chain in Centra PXE${row.http ? " (Debian's signed grub cannot fetch over HTTP: let the machine PXE boot, DHCP arch 7/9/11)" : ""}`,
    };
  const missing = [row.secureBoot.bootloader, ...row.secureBoot.needs].filter((name) => !installed.has(name));
  if (missing.length > 0)
    return {
      kind: "none",
      firmware,
      reason: `secureBoot is set for this machine, but ${missing.join(" and ")} ${missing.length > 1 ? "are" : "is"} not installed: ${row.secureBoot.hint}`,
    };
  return { kind: "tftp", firmware, filename: row.secureBoot.bootloader };
}
