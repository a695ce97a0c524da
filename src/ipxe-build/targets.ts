/**
 * The bootloaders `centra-pxe ipxe build` makes, each with the make goal that produces it in
 * iPXE's `src/` directory. Names are the ones `stateDir/ipxe` serves (src/files/bootloaders.ts):
 * the DHCP table (src/boot/firmware.ts) hands them out by these names.
 */
export interface IpxeTarget {
  /** The installed name in stateDir/ipxe. */
  name: string;
  /** The make goal, relative to iPXE's src/. */
  goal: string;
  /** Cross-compiler prefix (make's CROSS=); one make run per distinct prefix. */
  cross?: string;
  /** `rom`: a PCI option ROM for a NIC, not a network bootloader: built only when named (`--targets`). */
  kind: "pxe" | "efi" | "rom";
}

export const IPXE_TARGETS: readonly IpxeTarget[] = [
  // BIOS PXE chainloaded from the NIC's own PXE ROM, using its UNDI driver (DHCP arch 0).
  { name: "undionly.kpxe", goal: "bin/undionly.kpxe", kind: "pxe" },
  // UEFI x86-64 with iPXE's own NIC drivers (arch 7, 9; HTTP boot 16).
  { name: "ipxe.efi", goal: "bin-x86_64-efi/ipxe.efi", kind: "efi" },
  // UEFI x86-64 through the firmware's SNP driver: for NICs where ipxe.efi hangs "initialising devices".
  { name: "snponly.efi", goal: "bin-x86_64-efi/snponly.efi", kind: "efi" },
  // UEFI ARM64 (arch 11, HTTP boot 19), cross-built with Debian's gcc-aarch64-linux-gnu.
  { name: "ipxe-arm64.efi", goal: "bin-arm64-efi/ipxe.efi", cross: "aarch64-linux-gnu-", kind: "efi" },
  // BIOS iPXE as the option ROM of QEMU's modern virtio-net (PCI 1af4:1041): SeaBIOS runs it in
  // place of Debian's pxe-virtio.rom, so our script and CA are there from the first packet (the
  // lab's BIOS machines with `lab up --https`). A stock iPXE ROM would answer DHCP as iPXE and be
  // given the entry script over plain HTTP, trusting no CA of ours.
  { name: "ipxe-virtio.rom", goal: "bin/1af41041.rom", kind: "rom" },
];

/** What `ipxe build` makes unless `--targets` says otherwise: the bootloaders firmware is handed, no ROMs. */
export const DEFAULT_TARGET_NAMES: readonly string[] = IPXE_TARGETS.filter((t) => t.kind !== "rom").map((t) => t.name);

/** The targets named in `names` (`--targets a,b`), in table order, or every unknown name. */
export function selectTargets(names: readonly string[]): { targets: IpxeTarget[] } | { unknown: string[] } {
  const unknown = names.filter((n) => !IPXE_TARGETS.some((t) => t.name === n));
  if (unknown.length) return { unknown };
  return { targets: IPXE_TARGETS.filter((t) => names.includes(t.name)) };
}
