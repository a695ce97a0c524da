import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * The lab's virtual machines and the QEMU command line for each. Pure: paths in, arguments out, so
 * the firmware choices (and the quirks they work around) are visible in one place and testable.
 */

export enum LabFirmware {
  /** SeaBIOS with the iPXE option ROM of `ipxe-qemu`: iPXE itself does DHCP (user-class iPXE) and HTTP. */
  BiosIpxeRom = "bios-ipxe-rom",
  /** OVMF with its own UEFI PXE (no iPXE ROM): DHCP arch 7 → ipxe.efi over TFTP → iPXE → HTTP. */
  UefiPxe = "uefi-pxe",
  /** OVMF "HTTP Boot over IPv4" only: DHCP arch 16 → `HTTPClient` + URL of ipxe.efi, no TFTP at all. */
  UefiHttp = "uefi-http",
  /**
   * OVMF with Secure Boot enforced and Microsoft's keys enrolled (Debian's `OVMF_VARS_4M.ms.fd`), as
   * a real server ships: PXE over IPv4 → shim → grub → the signed kernel when the node is marked
   * `secureBoot`, and "Access Denied" for iPXE when it is not.
   */
  UefiSecureBoot = "uefi-secure-boot",
  /**
   * An ARM64 server: `qemu-system-aarch64 -M virt` with AAVMF (EDK2 for ARM) PXE over IPv4 → DHCP
   * arch 11 → ipxe-arm64.efi over TFTP → iPXE → the arm64 image. Always emulated (TCG) on an x86 host.
   */
  Arm64Pxe = "arm64-uefi-pxe",
  /**
   * An ARM64 server with Secure Boot enforced and Microsoft's keys enrolled (Debian's
   * `AAVMF_VARS.ms.fd`): DHCP arch 11 → Debian's signed shimaa64 → grubnetaa64 → the signed arm64
   * kernel, all over TFTP, for a node marked `secureBoot`.
   */
  Arm64SecureBoot = "arm64-uefi-secure-boot",
}

/** An ARM64 machine (`qemu-system-aarch64 -M virt`, AAVMF), with or without Secure Boot. */
export function isArm64(machine: Pick<LabMachine, "firmware">): boolean {
  return machine.firmware === LabFirmware.Arm64Pxe || machine.firmware === LabFirmware.Arm64SecureBoot;
}

/** The QEMU that runs `machine`. */
export function qemuBinaryOf(machine: LabMachine): string {
  return isArm64(machine) ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

export interface LabMachine {
  /** node01 … : the seed's launch-script names. */
  name: string;
  mac: string;
  firmware: LabFirmware;
  /** The tap device in the lab namespace this machine's NIC is plugged into. */
  tap: string;
  /** What the server should make of it: a profile and hostname, or the menu for an unknown MAC. */
  expect:
    | { profile: string; hostname: string }
    | { menu: true }
    /** Its firmware refuses the bootloader it is given (Secure Boot with iPXE). */
    | { refused: true };
  /** Its node is marked `secureBoot` in the lab's config (shim → grub instead of iPXE). */
  secureBoot?: boolean;
}

/** Host files the machines boot from (Debian package paths; see `findFirmware`). */
export interface FirmwarePaths {
  /** ipxe-qemu: iPXE as a legacy PCI option ROM for virtio-net. */
  ipxeVirtioRom: string;
  /** ovmf: the read-only code half of the UEFI flash. */
  ovmfCode: string;
  /** ovmf: the template of the writable variable store; each machine gets its own copy. */
  ovmfVarsTemplate: string;
  /** ovmf: the code built with Secure Boot (and SMM, which guards the variable store). */
  ovmfSecureBootCode: string;
  /** ovmf: variables with Microsoft's KEK and db (the UEFI CA that signs shim) and Secure Boot on. */
  ovmfSecureBootVarsTemplate: string;
  /** qemu-efi-aarch64: EDK2 for ARM `virt` machines, code and variable template. */
  aavmfCode: string;
  aavmfVarsTemplate: string;
  /**
   * qemu-efi-aarch64: the code for Secure Boot (Debian's `AAVMF_CODE.ms.fd`, the same build: ARM's
   * `virt` has no SMM to guard the variables) and variables with Microsoft's keys and Secure Boot on.
   */
  aavmfSecureBootCode: string;
  aavmfSecureBootVarsTemplate: string;
  /**
   * The CAs x86 UEFI machines trust for HTTPS boot, as an EFI_SIGNATURE_LIST (`centra-pxe tls
   * init` writes `ca.esl`); absent: the firmware trusts nothing and can HTTP boot over http:// only.
   */
  httpsCaCerts?: string;
}

export function findFirmware(): FirmwarePaths {
  const first = (...candidates: string[]) => candidates.find((p) => existsSync(p)) ?? candidates[0]!;
  return {
    ipxeVirtioRom: first("/usr/lib/ipxe/qemu/pxe-virtio.rom", "/usr/share/qemu/pxe-virtio.rom"),
    ovmfCode: first("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"),
    ovmfVarsTemplate: first("/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ovmfSecureBootCode: first("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"),
    ovmfSecureBootVarsTemplate: first("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
    aavmfCode: first("/usr/share/AAVMF/AAVMF_CODE.fd"),
    aavmfVarsTemplate: first("/usr/share/AAVMF/AAVMF_VARS.fd"),
    aavmfSecureBootCode: first("/usr/share/AAVMF/AAVMF_CODE.ms.fd"),
    aavmfSecureBootVarsTemplate: first("/usr/share/AAVMF/AAVMF_VARS.ms.fd"),
  };
}

/** The template a machine's own UEFI variable store is copied from. */
export function varsTemplateOf(machine: LabMachine, firmware: FirmwarePaths): string {
  if (machine.firmware === LabFirmware.Arm64Pxe) return firmware.aavmfVarsTemplate;
  if (machine.firmware === LabFirmware.Arm64SecureBoot) return firmware.aavmfSecureBootVarsTemplate;
  return machine.firmware === LabFirmware.UefiSecureBoot
    ? firmware.ovmfSecureBootVarsTemplate
    : firmware.ovmfVarsTemplate;
}

/** The content of `serconPortFile`: COM1's I/O port as a little-endian integer. */
export const SERCON_PORT_COM1 = Buffer.from([0xf8, 0x03]);

export type Accelerator = "kvm" | "tcg";

/**
 * A machine behind a lab BMC: the BMC, not the lab, starts and stops its QEMU, so the boot order
 * is the BMC's boot device and the serial console is served on a socket the BMC's SOL can reach.
 */
export interface BmcWiring {
  /** The boot device the BMC was told (IPMI `chassis bootdev`, Redfish `BootSourceOverrideTarget`). */
  bootDevice: "pxe" | "disk";
  /** TCP port on the namespace's loopback where QEMU serves COM1 (ipmi_sim's `sol` connects to it). */
  serialPort: number;
  /** ipmi_sim's VM interface (`serial 15 … codec VM`): QEMU's `ipmi-bmc-extern` connects to it. */
  ipmiVmPort?: number;
  /** QMP socket of this QEMU (the Redfish lab BMC's reset and power off). */
  qmpSocket: string;
  /** The machine's "installed" disk (`labDiskImage`): what a boot from the disk finds. */
  diskImage: string;
}

export interface MachineRunPaths {
  serialLog: string;
  pidFile: string;
  /** Per-machine copy of the OVMF variable store (UEFI only). */
  ovmfVars: string;
  /** Two bytes, 0x3f8 little-endian: COM1 for SeaBIOS's serial console (see qemuArguments). */
  serconPortFile: string;
}

export function machineRunPaths(runDir: string, machine: LabMachine): MachineRunPaths {
  return {
    serialLog: join(runDir, `${machine.name}.serial.log`),
    pidFile: join(runDir, `${machine.name}.pid`),
    ovmfVars: join(runDir, `${machine.name}.OVMF_VARS.fd`),
    serconPortFile: join(runDir, "sercon-port.bin"),
  };
}

/**
 * The arguments after `qemu-system-x86_64` for one lab machine. 512 MiB: the lab image is a few MiB
 * and QEMU commits guest memory lazily, so several machines fit on a small CI runner.
 */
export function qemuArguments(
  machine: LabMachine,
  firmware: FirmwarePaths,
  paths: MachineRunPaths,
  accel: Accelerator,
  memoryMiB = 512,
  bmc?: BmcWiring,
): string[] {
  if (isArm64(machine)) return arm64Arguments(machine, firmware, paths, memoryMiB);
  const uefi = machine.firmware !== LabFirmware.BiosIpxeRom;
  const secureBoot = machine.firmware === LabFirmware.UefiSecureBoot;
  // Without a BMC the lab only ever netboots; with one, the NIC leads the boot order only when the
  // BMC's boot device is PXE (bootindex overrides `-boot order` in both SeaBIOS and OVMF).
  const netFirst = bmc === undefined || bmc.bootDevice === "pxe";
  const nicBootIndex = netFirst ? ",bootindex=1" : "";
  const args = [
    "-name",
    machine.name,
    "-accel",
    accel,
    // q35 for OVMF (its default target); the i440fx `pc` machine for SeaBIOS, as the seed's scripts used.
    "-machine",
    // smm=on: the Secure Boot build keeps its variables in SMM-protected flash; without SMM it does not start.
    secureBoot ? "q35,smm=on" : uefi ? "q35" : "pc",
    "-m",
    String(memoryMiB),
    "-smp",
    "1",
    "-display",
    "none",
    "-vga",
    "none",
    // No VGA: SeaBIOS then redirects option-ROM text (the iPXE banner and menu) to the serial port
    // ("sercon"), so the menu of an unknown machine is visible in the serial log.
    ...serialConsole(paths, bmc),
    "-monitor",
    "none",
    "-parallel",
    "none",
    "-pidfile",
    paths.pidFile,
    // A guest that reboots (a failed boot, a kernel panic) ends the VM instead of looping.
    "-no-reboot",
    "-netdev",
    `tap,id=net0,ifname=${machine.tap},script=no,downscript=no`,
  ];
  if (accel === "kvm") args.push("-cpu", "host");
  if (secureBoot) {
    // Only SMM code may write the variable flash, so the guest OS cannot turn Secure Boot off.
    args.push("-global", "driver=cfi.pflash01,property=secure,value=on");
  }
  if (uefi) {
    args.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${secureBoot ? firmware.ovmfSecureBootCode : firmware.ovmfCode}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${paths.ovmfVars}`,
      // romfile= (empty): no iPXE option ROM, so OVMF's own VirtioNetDxe + PXE/HTTP boot stack runs —
      // the firmware path real UEFI servers take.
      "-device",
      `virtio-net-pci,netdev=net0,mac=${machine.mac},romfile=${nicBootIndex}`,
    );
    if (firmware.httpsCaCerts !== undefined) {
      // OvmfPkg's TlsAuthConfigLib copies this fw_cfg file into the TlsCaCertificate variable that
      // HttpBootDxe's TLS connections trust: the way to enrol a CA without a setup menu.
      args.push("-fw_cfg", `name=etc/edk2/https/cacerts,file=${firmware.httpsCaCerts}`);
    }
    if (secureBoot) {
      // IPv6 PXE after a refused IPv4 one only costs minutes under TCG; the test needs IPv4 PXE alone.
      args.push("-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n");
    }
    if (machine.firmware === LabFirmware.UefiHttp) {
      // OVMF tries PXE over IPv4, then IPv6, before HTTP boot (minutes under TCG). Turning both PXE
      // stacks off makes it go straight to "UEFI HTTPv4".
      args.push(
        "-fw_cfg",
        "name=opt/org.tianocore/IPv4PXESupport,string=n",
        "-fw_cfg",
        "name=opt/org.tianocore/IPv6PXESupport,string=n",
      );
    }
  } else {
    args.push(
      // disable-legacy=on: the ipxe-qemu ROM's PCI header names the modern virtio-net device (1af4:1041);
      // SeaBIOS only runs a ROM whose IDs match the device, and the transitional default is 1af4:1000.
      "-device",
      `virtio-net-pci,disable-legacy=on,netdev=net0,mac=${machine.mac},romfile=${firmware.ipxeVirtioRom}${nicBootIndex}`,
      "-boot",
      netFirst ? "order=n" : "order=c",
      // SeaBIOS "sercon": with this fw_cfg file (the I/O port, little-endian) it mirrors option-ROM text
      // output — the iPXE banner and menu — to COM1, the only console a headless lab machine has.
      "-fw_cfg",
      `name=etc/sercon-port,file=${paths.serconPortFile}`,
    );
  }
  if (bmc) args.push(...bmcDevices(bmc));
  return args;
}

/** COM1: a plain file without a BMC; with one, a socket for SOL that still logs every byte to the file. */
function serialConsole(paths: MachineRunPaths, bmc: BmcWiring | undefined): string[] {
  if (!bmc) return ["-serial", `file:${paths.serialLog}`];
  // server=on,wait=off: the machine boots whether or not SOL listens; logappend=off: the file holds
  // this power-on's boot, as the plain file does for one QEMU run.
  return [
    "-chardev",
    `socket,id=com1,host=127.0.0.1,port=${bmc.serialPort},server=on,wait=off,logfile=${paths.serialLog},logappend=off`,
    "-serial",
    "chardev:com1",
  ];
}

/**
 * QMP for the Redfish lab BMC and, behind ipmi_sim, the BMC as the guest sees it: a KCS system
 * interface (isa-ipmi-kcs) whose BMC is the external ipmi_sim (ipmi-bmc-extern) on its VM port.
 * reconnect=2: ipmi_sim may start after QEMU, or restart; QEMU dials again.
 */
function bmcDevices(bmc: BmcWiring): string[] {
  // -daemonize: the BMC's power-on returns once QEMU runs (ipmi_sim waits for its chassis program).
  const args = [
    "-daemonize",
    "-qmp",
    `unix:${bmc.qmpSocket},server=on,wait=off`,
    "-drive",
    `file=${bmc.diskImage},format=raw,if=virtio,readonly=on`,
  ];
  if (bmc.ipmiVmPort !== undefined)
    args.push(
      "-chardev",
      `socket,id=ipmi0,host=127.0.0.1,port=${bmc.ipmiVmPort},reconnect=2`,
      "-device",
      "ipmi-bmc-extern,chardev=ipmi0,id=bmc0",
      "-device",
      "isa-ipmi-kcs,bmc=bmc0",
    );
  return args;
}

/**
 * `qemu-system-aarch64` for an ARM64 lab machine: the `virt` board (what SBSA-like ARM servers
 * look like to EDK2: PL011 serial `ttyAMA0`, PCIe), a Cortex-A57 under TCG (no KVM for another
 * architecture), AAVMF's code and this machine's copy of its variables as the two flash banks.
 */
function arm64Arguments(
  machine: LabMachine,
  firmware: FirmwarePaths,
  paths: MachineRunPaths,
  memoryMiB: number,
): string[] {
  return [
    "-name",
    machine.name,
    "-accel",
    "tcg",
    "-machine",
    "virt",
    "-cpu",
    "cortex-a57",
    "-m",
    String(memoryMiB),
    "-smp",
    "1",
    "-display",
    "none",
    "-serial",
    `file:${paths.serialLog}`,
    "-monitor",
    "none",
    "-parallel",
    "none",
    "-pidfile",
    paths.pidFile,
    "-no-reboot",
    "-drive",
    `if=pflash,format=raw,unit=0,readonly=on,file=${machine.firmware === LabFirmware.Arm64SecureBoot ? firmware.aavmfSecureBootCode : firmware.aavmfCode}`,
    "-drive",
    `if=pflash,format=raw,unit=1,file=${paths.ovmfVars}`,
    "-netdev",
    `tap,id=net0,ifname=${machine.tap},script=no,downscript=no`,
    // romfile= (empty): EDK2's own VirtioNetDxe and PXE, as on the x86 UEFI machines.
    "-device",
    `virtio-net-pci,netdev=net0,mac=${machine.mac},romfile=,bootindex=1`,
    // IPv6 PXE and HTTP boot after IPv4 PXE cost minutes under emulation; this machine needs IPv4 PXE alone.
    "-fw_cfg",
    "name=opt/org.tianocore/IPv6PXESupport,string=n",
  ];
}
