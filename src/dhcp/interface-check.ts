import { formatIpv4, inSubnet, parseIpv4, prefixLength } from "../config/primitives.js";
import type { Config } from "../config/schema.js";

/** One address of an interface, as `os.networkInterfaces()` reports it. */
export interface InterfaceAddress {
  family: string;
  address: string;
  netmask: string;
}

/**
 * Why DHCP in server mode must not answer on `config.interface`, or undefined when it may.
 *
 * ISC dhcpd refuses an interface whose network no subnet declaration covers ("No subnet
 * declaration for eth0"); we go one step further and require the interface to carry serverAddress
 * itself, in exactly the network dhcp.subnet/netmask declares. Anything else means the file was
 * written for another network (or none: the lab's defaults), and answering would make us a rogue
 * DHCP server handing out addresses that do not route, with a next-server nobody can reach.
 * Proxy mode hands out no addresses and is not checked; neither is `off`.
 */
export function interfaceRefusal(
  config: Pick<Config, "interface" | "serverAddress" | "dhcp">,
  interfaces: Readonly<Record<string, readonly InterfaceAddress[] | undefined>>,
): string | undefined {
  if (config.dhcp.mode !== "server") return undefined;
  const name = config.interface;
  const declared = `${config.dhcp.subnet}/${prefixLength(parseIpv4(config.dhcp.netmask) ?? 0) ?? config.dhcp.netmask}`;
  const ipv4 = (interfaces[name] ?? []).filter((a) => a.family === "IPv4");
  // os.networkInterfaces() lists only interfaces that have an address: a missing one may exist, bare.
  if (ipv4.length === 0)
    return `no subnet declaration for ${name}: it has no IPv4 address (or does not exist; this host has: ${
      Object.keys(interfaces).join(", ") || "none"
    }); give it serverAddress ${config.serverAddress} in ${declared} (ip addr add ${config.serverAddress}/${declared.split("/")[1]} dev ${name}) or fix the config`;
  const carried = ipv4.map((a) => `${a.address}/${prefixLength(parseIpv4(a.netmask) ?? 0) ?? a.netmask}`).join(", ");
  const own = ipv4.find((a) => a.address === config.serverAddress);
  if (!own)
    return `no subnet declaration for ${name} (${carried}): it does not carry serverAddress ${config.serverAddress}, so this config was written for another network; fix interface, serverAddress and dhcp.subnet, or add the address to ${name}`;
  const address = parseIpv4(own.address);
  const mask = parseIpv4(own.netmask);
  const subnet = parseIpv4(config.dhcp.subnet);
  const subnetMask = parseIpv4(config.dhcp.netmask);
  if (address === undefined || mask === undefined || subnet === undefined || subnetMask === undefined)
    return `cannot read the addresses of ${name} (${carried})`;
  const network = `${formatIpv4((address & mask) >>> 0)}/${prefixLength(mask) ?? own.netmask}`;
  if (mask !== subnetMask || !inSubnet(address, subnet, subnetMask))
    return `no subnet declaration for ${name}'s network ${network} (dhcp.subnet declares ${declared}): the pool and router would not fit the link; make dhcp.subnet and netmask match ${network}`;
  return undefined;
}
