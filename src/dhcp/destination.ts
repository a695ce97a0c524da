import { BROADCAST_FLAG, type DhcpPacket } from "./packet.js";
import { MessageType } from "./options.js";

export const SERVER_PORT = 67;
export const CLIENT_PORT = 68;
/** PXE 2.1 §2.2.3: the boot server (proxyDHCP) port. */
export const PXE_PORT = 4011;
export const BROADCAST_ADDRESS = 0xffffffff;

/** Where a reply goes. `hardware` means unicast to `address` at link address `mac` (no ARP possible yet). */
export type Destination =
  | { kind: "unicast"; address: number; port: number }
  | { kind: "broadcast"; port: number }
  | { kind: "hardware"; address: number; mac: Buffer; port: number };

/**
 * RFC 2131 §4.1, "If the 'giaddr' field … is nonzero …": the one table for where a server reply goes.
 * `source` is the datagram's origin, needed for the PXE boot-server port, where the client is
 * answered where it asked from (PXE 2.1 §2.2.3).
 */
export function replyDestination(
  request: DhcpPacket,
  replyType: number,
  reply: DhcpPacket,
  source?: { address: number; port: number; pxePort?: boolean },
): Destination {
  // Relayed: to the relay's server port; it forwards to the client.
  if (request.giaddr !== 0) return { kind: "unicast", address: request.giaddr, port: SERVER_PORT };
  if (source?.pxePort && source.address !== 0) return { kind: "unicast", address: source.address, port: source.port };
  // A NAK must reach a client whose address is wrong, so it is always broadcast.
  if (replyType === MessageType.Nak) return { kind: "broadcast", port: CLIENT_PORT };
  // The client has a working address (RENEWING, INFORM): talk to it.
  if (request.ciaddr !== 0) return { kind: "unicast", address: request.ciaddr, port: CLIENT_PORT };
  // The client cannot receive unicast before it is configured, and says so.
  if ((request.flags & BROADCAST_FLAG) !== 0 || reply.yiaddr === 0) return { kind: "broadcast", port: CLIENT_PORT };
  // Only Ethernet-sized hardware addresses can be put in the ARP table.
  if (request.htype !== 1 || request.hlen !== 6) return { kind: "broadcast", port: CLIENT_PORT };
  return { kind: "hardware", address: reply.yiaddr, mac: request.chaddr.subarray(0, 6), port: CLIENT_PORT };
}
