import { execFileSync } from "node:child_process";
import { networkInterfaces } from "node:os";
import { formatIpv4 } from "../config/primitives.js";
import type { InterfaceAddress } from "./interface-check.js";

/** One interface of `ip -j -4 addr show`, the fields read here. */
interface IpAddrEntry {
  ifname?: unknown;
  addr_info?: { family?: unknown; local?: unknown; prefixlen?: unknown }[];
}

/**
 * The IPv4 addresses of this host's interfaces, for the interface check at start and reload.
 *
 * `os.networkInterfaces()` (libuv) leaves out every interface that is not UP and RUNNING: a bridge
 * whose ports are not up yet, or a NIC without carrier, would look like it has no address at all,
 * and DHCP would refuse to start for the wrong reason (seen in the lab: the bridge has no running
 * port until the first VM starts). The kernel's own list, through iproute2, has them all; the
 * libuv view is the fallback where `ip` is missing.
 */
export function readInterfaceAddresses(): Record<string, InterfaceAddress[]> {
  let entries: IpAddrEntry[];
  try {
    entries = JSON.parse(
      execFileSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }),
    ) as IpAddrEntry[];
  } catch {
    return fromLibuv();
  }
  const result: Record<string, InterfaceAddress[]> = {};
  for (const entry of entries) {
    if (typeof entry.ifname !== "string") continue;
    const addresses: InterfaceAddress[] = [];
    for (const info of entry.addr_info ?? []) {
      if (info.family !== "inet" || typeof info.local !== "string" || typeof info.prefixlen !== "number") continue;
      const mask = info.prefixlen === 0 ? 0 : (0xffffffff << (32 - info.prefixlen)) >>> 0;
      addresses.push({ family: "IPv4", address: info.local, netmask: formatIpv4(mask) });
    }
    if (addresses.length > 0) result[entry.ifname] = addresses;
  }
  return result;
}

function fromLibuv(): Record<string, InterfaceAddress[]> {
  const result: Record<string, InterfaceAddress[]> = {};
  for (const [name, list] of Object.entries(networkInterfaces())) {
    const ipv4 = (list ?? []).filter((a) => a.family === "IPv4");
    if (ipv4.length > 0) result[name] = ipv4.map((a) => ({ family: "IPv4", address: a.address, netmask: a.netmask }));
  }
  return result;
}
