import { stringify } from "yaml";
import type { LocalBootMethod } from "../boot/boot-chain.js";
import type { ConfigInput } from "../config/schema.js";
import { isArm64, LabFirmware, type LabMachine } from "./machines.js";

/**
 * The lab's network, machines and server config: the seed's network (10.0.100.0/24, server
 * 10.0.100.10), its three profiles and its MAC scheme, as the seed's node01/02/03 launch scripts had.
 */

export const LAB_SUBNET = "10.0.100.0";
export const LAB_SERVER_ADDRESS = "10.0.100.10";
/** The foreign DHCP server of the proxyDHCP lab sits where the seed's router is. */
export const LAB_FOREIGN_DHCP_ADDRESS = "10.0.100.1";
export const LAB_BRIDGE = "br-lab";
/** A unique-local prefix for the optional IPv6 router advertisements (`lab up --ipv6-ra`). */
export const LAB_IPV6_PREFIX = "fd00:100::";

/** node01 BIOS control plane, node02 UEFI worker (the seed's nodes), node03 unknown: meets the menu. */
export const SEED_LAB_MACHINES: readonly LabMachine[] = [
  {
    name: "node01",
    mac: "52:54:00:12:34:56",
    firmware: LabFirmware.BiosIpxeRom,
    tap: "tap-node01",
    expect: { profile: "control-plane", hostname: "control-plane-01" },
  },
  {
    name: "node02",
    mac: "52:54:00:12:34:5d",
    firmware: LabFirmware.UefiPxe,
    tap: "tap-node02",
    expect: { profile: "worker", hostname: "worker-04" },
  },
  {
    name: "node03",
    mac: "52:54:00:12:34:60",
    firmware: LabFirmware.BiosIpxeRom,
    tap: "tap-node03",
    expect: { menu: true },
  },
];

/** node04: UEFI HTTP boot (no TFTP at all), registered as the all-in-one profile. */
export const HTTP_BOOT_LAB_MACHINE: LabMachine = {
  name: "node04",
  mac: "52:54:00:12:34:61",
  firmware: LabFirmware.UefiHttp,
  tap: "tap-node04",
  expect: { profile: "all-in-one", hostname: "all-in-one-01" },
};

/**
 * The Secure Boot pair (`lab up --secure-boot`), both on OVMF with Secure Boot enforced and
 * Microsoft's keys: node05's node is marked `secureBoot` and boots shim → grub → the signed kernel;
 * node06's is not, gets iPXE, and its firmware refuses it ("Access Denied"): the negative case.
 */
export const SECURE_BOOT_LAB_MACHINES: readonly LabMachine[] = [
  {
    name: "node05",
    mac: "52:54:00:12:34:62",
    firmware: LabFirmware.UefiSecureBoot,
    tap: "tap-node05",
    expect: { profile: "worker", hostname: "secure-worker-01" },
    secureBoot: true,
  },
  {
    name: "node06",
    mac: "52:54:00:12:34:63",
    firmware: LabFirmware.UefiSecureBoot,
    tap: "tap-node06",
    expect: { refused: true },
  },
];

/** The image ARM64 lab machines boot (Debian's arm64 kernel and the lab initrd built for it). */
export const ARM64_LAB_IMAGE = "nixos-arm64";

/**
 * node07 (`lab up --arm64`): an ARM64 server (AAVMF on QEMU's `virt` board) registered as a worker;
 * DHCP arch 11 → ipxe-arm64.efi (built by `ipxe build`) → its profile's arm64 image.
 */
export const ARM64_LAB_MACHINE: LabMachine = {
  name: "node07",
  mac: "52:54:00:12:34:64",
  firmware: LabFirmware.Arm64Pxe,
  tap: "tap-node07",
  expect: { profile: "worker", hostname: "arm-worker-01" },
};

/**
 * node11 (`lab up --arm64 --secure-boot`): an ARM64 server with Secure Boot enforced (AAVMF with
 * Microsoft's keys), its node marked `secureBoot`: DHCP arch 11 → Debian's signed shimaa64.efi →
 * grubnetaa64 → its profile's arm64 image (Debian's signed arm64 kernel), all over TFTP.
 */
export const ARM64_SECURE_BOOT_LAB_MACHINE: LabMachine = {
  name: "node11",
  mac: "52:54:00:12:34:70",
  firmware: LabFirmware.Arm64SecureBoot,
  tap: "tap-node11",
  expect: { profile: "worker", hostname: "arm-secure-01" },
  secureBoot: true,
};

/**
 * node08: OVMF PXE like node02, for the boot-chain fallback: its first attempt is cut off after the
 * bootloader arrived and before any script (a stall), so its next attempt gets `snponly.efi`.
 */
export const FALLBACK_LAB_MACHINE: LabMachine = {
  name: "node08",
  mac: "52:54:00:12:34:65",
  firmware: LabFirmware.UefiPxe,
  tap: "tap-node08",
  expect: { profile: "worker", hostname: "fallback-worker-01" },
};

/** Fixed addresses of registered machines, outside the dynamic pool (.100-.200). */
const FIXED_ADDRESSES: Record<string, string> = {
  "control-plane-01": "10.0.100.50",
  "worker-04": "10.0.100.64",
  "all-in-one-01": "10.0.100.70",
  "secure-worker-01": "10.0.100.71",
  "arm-worker-01": "10.0.100.72",
  "fallback-worker-01": "10.0.100.73",
  "arm-secure-01": "10.0.100.81",
};

export interface LabConfigOptions {
  stateDir: string;
  machines: readonly LabMachine[];
  /** `proxy`: a foreign DHCP server hands out addresses, ours only the boot information. */
  dhcpMode: "server" | "proxy";
  /** Short, so an unknown machine leaves the menu quickly in a lab. */
  menuTimeout?: string;
  /** `provisioning:` of the server's config (tests: a short timeout, a callback URL nobody answers). */
  provisioning?: { timeout?: string; apiUrl?: string };
  /** `lab up --bmc`: each registered machine's BMC (by machine name), so the server can power it. */
  bmcs?: Record<string, LabNodeBmc>;
  /** `lab up --https`: the files `centra-pxe tls init` made for the server (`http.tls`). */
  https?: LabTlsFiles;
  /** Every profile's `localBoot` (the e2e test of `http-404`); default: the platform's. */
  localBoot?: LocalBootMethod;
}

/** The lab's CA and server certificate, as `centra-pxe tls init` writes them. */
export interface LabTlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** A node's `bmc:` in the lab's config. */
export type LabNodeBmc = NonNullable<NonNullable<ConfigInput["nodes"]>[string]["bmc"]>;

/** The config the lab's server runs with, as the YAML text written to the lab's state directory. */
export function labConfig(options: LabConfigOptions): ConfigInput {
  const nodes: NonNullable<ConfigInput["nodes"]> = {};
  for (const m of options.machines) {
    if (!("profile" in m.expect)) continue;
    const fixed = FIXED_ADDRESSES[m.expect.hostname];
    nodes[m.mac] = {
      profile: m.expect.profile,
      hostname: m.expect.hostname,
      ...(fixed && options.dhcpMode === "server" ? { ipAddress: fixed } : {}),
      ...(m.secureBoot ? { secureBoot: true } : {}),
      ...(options.bmcs?.[m.name] ? { bmc: options.bmcs[m.name] } : {}),
    };
  }
  // With an ARM64 machine, every profile boots the arm64 image there, on ARM's serial console.
  const arm64 = options.machines.some(isArm64)
    ? { arches: { arm64: { image: ARM64_LAB_IMAGE, console: ["ttyAMA0,115200n8"] } } }
    : {};
  const localBoot = options.localBoot !== undefined ? { localBoot: options.localBoot } : {};
  return {
    interface: LAB_BRIDGE,
    serverAddress: LAB_SERVER_ADDRESS,
    stateDir: options.stateDir,
    dhcp: {
      mode: options.dhcpMode,
      subnet: LAB_SUBNET,
      netmask: "255.255.255.0",
      broadcast: "10.0.100.255",
      range: { start: "10.0.100.100", end: "10.0.100.200" },
      router: LAB_FOREIGN_DHCP_ADDRESS,
      dns: [LAB_FOREIGN_DHCP_ADDRESS],
      leaseTime: "1h",
    },
    boot: {
      menuTimeout: options.menuTimeout ?? "5s",
      console: ["tty0", "ttyS0,115200n8"],
    },
    ...(options.https
      ? {
          http: {
            // uefiHttpBoot: the lab's UEFI machines get the CA through fw_cfg (machines.ts), so
            // their DHCP answer names https://. Plain HTTP stays for clients without our CA.
            tls: { cert: options.https.cert, key: options.https.key, ca: options.https.ca, uefiHttpBoot: true },
          },
        }
      : {}),
    ...(options.provisioning || options.https
      ? {
          provisioning: {
            // The lab initrd calls back with busybox nc, plain HTTP/1.0 (no TLS client in it): its
            // callback URL stays http:// when the scripts around it are https://.
            ...(options.https ? { apiUrl: `http://${LAB_SERVER_ADDRESS}/api/v1` } : {}),
            ...options.provisioning,
          },
        }
      : {}),
    profiles: {
      "control-plane": { image: "nixos", cmdline: "", ...arm64, ...localBoot },
      worker: { image: "nixos", cmdline: "", ...arm64, ...localBoot },
      "all-in-one": { image: "nixos", cmdline: "", ...arm64, ...localBoot },
    },
    nodes,
  };
}

export function labConfigYaml(options: LabConfigOptions): string {
  return `# Generated by \`centra-pxe lab up\`; removed by \`centra-pxe lab down\`.\n${stringify(labConfig(options))}`;
}

/** dnsmasq as the foreign DHCP server of the proxyDHCP lab: addresses only, no boot options at all. */
export function foreignDhcpArguments(options: { interface: string; leaseFile: string; pidFile: string }): string[] {
  return [
    "--keep-in-foreground",
    "--port=0", // no DNS
    `--interface=${options.interface}`,
    "--bind-interfaces",
    "--dhcp-range=10.0.100.100,10.0.100.200,255.255.255.0,1h",
    `--dhcp-option=option:router,${LAB_FOREIGN_DHCP_ADDRESS}`,
    `--dhcp-leasefile=${options.leaseFile}`,
    `--pid-file=${options.pidFile}`,
    "--log-dhcp",
    "--log-facility=-",
  ];
}
