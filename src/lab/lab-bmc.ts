import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import type { LabMachine } from "./machines.js";

/**
 * The lab's BMCs (`lab up --bmc`): what each machine's BMC is and the files that make it, as pure
 * text. An IPMI machine gets one OpenIPMI `ipmi_sim`; the Redfish machines share one lab Redfish
 * server (`redfish-bmc.ts`) with a listener per machine. Either way the BMC, not the lab, starts
 * and stops the machine's QEMU, with the boot order of the boot device it was told.
 *
 * Everything listens inside the lab namespace (each lab has its own port space): the BMC's LAN side
 * on the server's bridge address, the machine-facing sockets (COM1 for SOL, ipmi_sim's VM
 * interface, QMP) on the namespace's loopback.
 */

export type LabBmcType = "ipmi" | "redfish";

export const LAB_BMC_TYPES: readonly LabBmcType[] = ["ipmi", "redfish"];

export const LAB_BMC_USERNAME = "admin";

/** Machine n's IPMI LAN (RMCP+, UDP) port: 6230 + n, not 623, so each machine has its own. */
const IPMI_LAN_BASE_PORT = 6230;
/** Machine n's Redfish (HTTP) port. */
const REDFISH_BASE_PORT = 8440;
const SERIAL_BASE_PORT = 7000;
const IPMI_VM_BASE_PORT = 9000;

export interface LabBmc {
  type: LabBmcType;
  /** Where the BMC's LAN side listens: the lab server's bridge address. */
  address: string;
  port: number;
  username: string;
  /** The password, alone in a 0600 file (the way the server's `bmc.passwordFile` takes it). */
  passwordFile: string;
  /** This machine's BMC directory: lan.conf, the chassis program, QEMU's arguments, pid and boot files. */
  dir: string;
  /** COM1 of the machine, served on the namespace's loopback (SOL reads it). */
  serialPort: number;
  ipmiVmPort?: number;
  qmpSocket: string;
  /** QEMU's pid while the machine is powered on. */
  pidFile: string;
  /** The boot device the BMC holds: `pxe` or anything else (`default`, `none`: disk). */
  bootFile: string;
  /** QEMU's arguments, one a line, for each boot device (`qemuArguments` with its `BmcWiring`). */
  argsFiles: { pxe: string; disk: string };
  /** What QEMU printed before it daemonized (a tap it could not open, a missing firmware). */
  qemuLog: string;
  /** The machine's disk (`labDiskImage`). */
  diskImage: string;
}

/** The BMC of the `index`-th machine of a lab whose BMC files live under `bmcRoot`. */
export function labBmcPlan(
  machine: LabMachine,
  index: number,
  type: LabBmcType,
  bmcRoot: string,
  address: string,
): LabBmc {
  const dir = join(bmcRoot, machine.name);
  return {
    type,
    address,
    port: (type === "ipmi" ? IPMI_LAN_BASE_PORT : REDFISH_BASE_PORT) + index,
    username: LAB_BMC_USERNAME,
    passwordFile: join(dir, "password"),
    dir,
    serialPort: SERIAL_BASE_PORT + index,
    ...(type === "ipmi" ? { ipmiVmPort: IPMI_VM_BASE_PORT + index } : {}),
    qmpSocket: join(dir, "qmp.sock"),
    pidFile: join(dir, "qemu.pid"),
    bootFile: join(dir, "bootdev"),
    argsFiles: { pxe: join(dir, "qemu-pxe.args"), disk: join(dir, "qemu-disk.args") },
    qemuLog: join(dir, "qemu.log"),
    diskImage: join(dir, "disk.img"),
  };
}

/** What the lab disk's boot sector prints (through the BIOS, which SeaBIOS mirrors to COM1). */
export const LAB_DISK_BANNER = "Centra PXE lab: booted from the local disk";

/**
 * The disk of a lab machine behind a BMC: 1 MiB with a BIOS boot sector that prints
 * `LAB_DISK_BANNER` and halts, so a boot from the disk is visible on the console and ends there,
 * as an installed machine's would. (An empty disk would not do: SeaBIOS then falls through to the
 * NIC, and the machine would netboot whatever the boot device said.) BIOS machines only; OVMF
 * finds no EFI system partition on it.
 */
export function labDiskImage(): Buffer {
  const message = Buffer.from(`\r\n${LAB_DISK_BANNER}\r\n\0`, "latin1");
  const messageAddress = 0x7c00 + 25;
  // 16-bit real mode at 0x7c00: DS=0, SI=message; print each byte with INT 10h AH=0Eh; then idle with
  // interrupts on: with them off the last characters would stay in SeaBIOS's sercon buffer.
  // biome-ignore format: one instruction a line
  const code = Buffer.from([
    0x31, 0xc0, //                   xor ax, ax
    0x8e, 0xd8, //                   mov ds, ax
    0x31, 0xdb, //                   xor bx, bx      (page 0)
    0xfc, //                         cld
    0xbe, messageAddress & 0xff, messageAddress >> 8, // mov si, message
    0xac, //                         next: lodsb
    0x08, 0xc0, //                   or al, al
    0x74, 0x06, //                   jz halt
    0xb4, 0x0e, //                   mov ah, 0Eh     (teletype output)
    0xcd, 0x10, //                   int 10h
    0xeb, 0xf5, //                   jmp next
    0xfb, //                         halt: sti     (SeaBIOS's sercon flushes COM1 from its timer IRQ)
    0xf4, //                         hlt
    0xeb, 0xfc, //                   jmp halt
  ]);
  const disk = Buffer.alloc(1024 * 1024);
  code.copy(disk, 0);
  message.copy(disk, code.length);
  // The MBR signature the BIOS checks before it jumps to the sector.
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

/**
 * A fresh lab BMC password: 16 characters, the longest an IPMI 1.5 user password may be (IPMI v2
 * §22.29 Set User Password allows 20 only with the 20-byte form, which not every tool sends).
 */
export function newLabBmcPassword(): string {
  return randomBytes(8).toString("hex");
}

/** A stable GUID for the machine's BMC (Get System GUID), from its MAC. */
function bmcGuid(machine: LabMachine): string {
  return createHash("sha256").update(`centra-lab-bmc ${machine.mac}`).digest("hex").slice(0, 32);
}

function quoted(path: string): string {
  // lan.conf strings and the chassis script's single-quoted paths carry no escapes: refuse what would break them.
  if (/["'\\\n]/.test(path)) throw new Error(`lab BMC path ${JSON.stringify(path)} has a quote or newline`);
  return path;
}

/**
 * ipmi_sim's lan.conf (ipmi_lan(5)) for one machine. Found with Debian's ipmi_sim 2.0.33
 * (lanserv/bmc_chassis.c): once a `chassis_control` program is set it gets power on/off/reset as
 * well as the boot device, ahead of `startcmd` and the VM interface, so the program starts and
 * stops QEMU itself; without one, `chassis bootdev` is refused. The VM interface (`serial 15 …
 * codec VM`) is still there: it is the guest's KCS BMC (QEMU's ipmi-bmc-extern). `sol` connects
 * to the machine's COM1 socket and dials again after every power-on.
 */
export function ipmiSimLanConf(machine: LabMachine, bmc: LabBmc, password: string, chassisProgram: string): string {
  if (bmc.ipmiVmPort === undefined) throw new Error(`${machine.name}: not an IPMI lab BMC`);
  const auths = "md5";
  return `# Generated by \`centra-pxe lab up --bmc ipmi\` for ${machine.name} ${machine.mac}.
name "${machine.name}"
set_working_mc 0x20
  startlan 1
    addr ${bmc.address} ${bmc.port}
    priv_limit admin
    allowed_auths_callback ${auths}
    allowed_auths_user ${auths}
    allowed_auths_operator ${auths}
    allowed_auths_admin ${auths}
    guid ${bmcGuid(machine)}
  endlan
  chassis_control "${quoted(chassisProgram)} 0x20"
  serial 15 127.0.0.1 ${bmc.ipmiVmPort} codec VM
  sol "tcp:127.0.0.1:${bmc.serialPort}" 115200
  user 2 true "${bmc.username}" "${password}" admin 10 ${auths}
`;
}

/** ipmi_sim's command file (ipmi_sim_cmd(5)): one BMC at 0x20, as its example `ipmisim1.emu` sets up. */
export const IPMI_SIM_COMMANDS = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`;

/**
 * ipmi_sim's chassis_control program for one machine, as POSIX sh: ipmi_sim runs it and waits
 * for it on every power or boot-device request, so it must answer in milliseconds (a Node start
 * would make ipmitool retransmit). Its interface (lanserv/ipmi_sim_chassiscontrol):
 *   <prog> <mc> get <parm>...        prints `<parm>:<value>` per parm (power: 0|1, boot: a name)
 *   <prog> <mc> set <parm> <value>... power 0|1, reset 1, boot none|pxe|default|cdrom|bios, shutdown 1
 * Power on starts QEMU with the arguments of the boot device it holds; QEMU daemonizes and writes
 * its pid file, and `-no-reboot` makes a guest reboot or poweroff end it: powered off.
 */
export function chassisControlScript(machine: LabMachine, bmc: LabBmc): string {
  return `#!/bin/sh
# Generated by \`centra-pxe lab up --bmc ipmi\`: ipmi_sim's chassis_control program for ${machine.name}.
pidfile='${quoted(bmc.pidFile)}'
bootfile='${quoted(bmc.bootFile)}'
qemulog='${quoted(bmc.qemuLog)}'

running() {
  [ -s "$pidfile" ] && grep -q qemu-system "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null
}

power_on() {
  running && return 0
  case "$(cat "$bootfile" 2>/dev/null)" in
    pxe) argsfile='${quoted(bmc.argsFiles.pxe)}' ;;
    *) argsfile='${quoted(bmc.argsFiles.disk)}' ;;
  esac
  set --
  while IFS= read -r arg; do set -- "$@" "$arg"; done < "$argsfile"
  # QEMU's output goes to its log, never to ipmi_sim's pipe: the daemonized QEMU would hold it open.
  qemu-system-x86_64 "$@" >>"$qemulog" 2>&1 </dev/null || { echo "QEMU did not start, see $qemulog"; return 1; }
}

power_off() {
  running || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
  return 0
}

shift
op=$1
shift
case $op in
  get)
    for parm in "$@"; do
      case $parm in
        power) if running; then echo "power:1"; else echo "power:0"; fi ;;
        boot) echo "boot:$(cat "$bootfile" 2>/dev/null || echo default)" ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
      esac
    done
    ;;
  set)
    while [ $# -ge 2 ]; do
      case $1 in
        power) if [ "$2" = 1 ]; then power_on || exit 1; else power_off; fi ;;
        reset) if [ "$2" = 1 ]; then power_off; power_on || exit 1; fi ;;
        shutdown) power_off ;;
        boot) echo "$2" > "$bootfile" ;;
        identify) shift ;;
        *) echo "Invalid parameter: $1"; exit 1 ;;
      esac
      shift 2
    done
    ;;
  *) echo "Unknown operation: $op"; exit 1 ;;
esac
`;
}
