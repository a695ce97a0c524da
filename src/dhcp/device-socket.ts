import { loadAddon } from "../native/load-addon.js";

/**
 * The native addon (native/udp-device-socket.c): UDP sockets bound to one interface with
 * SO_BINDTODEVICE, so the kernel drops requests from every other network before we see them.
 */
interface DeviceSocketAddon {
  openDeviceSocket(interfaceName: string, port: number, receiveBufferBytes: number): number;
  setArpEntry(interfaceName: string, address: string, mac: Buffer): void;
  sendBatch(
    fd: number,
    datagrams: Buffer[],
    destinations: Uint32Array,
    done: (failed: number, errno: number) => void,
  ): void;
}

const addon = () => loadAddon<DeviceSocketAddon>("udp_device_socket", "the DHCP server");

/**
 * A UDP socket bound to `interfaceName` and `0.0.0.0:port`, as a file descriptor for
 * `dgram` to adopt (server.ts): it receives only what arrives on that interface and sends only
 * out of it. The kernel charges each small datagram ~2 KiB of buffer (its skb), so 4 MiB holds
 * about 1,800 requests: what arrives while a loaded host does not schedule us for a few tens of
 * milliseconds. It does not make answers stale: the edge empties it into the intake (intake.ts)
 * faster than it handles, and sheds DISCOVERs there, so a REQUEST waits behind reads, not behind
 * the handling of a flood. With 1 MiB the benchmark's kernel drops (REQUESTs among them) were tens
 * of thousands per run on the shared 2-CPU box.
 */
export function openDeviceSocketFd(interfaceName: string, port: number, receiveBufferBytes = 4 << 20): number {
  return addon().openDeviceSocket(interfaceName, port, receiveBufferBytes);
}

/**
 * Teach the kernel `address` is at `mac` on `interfaceName`, so a unicast reply reaches a client
 * that cannot answer ARP yet (RFC 2131 §4.1).
 */
export function setArpEntry(interfaceName: string, address: string, mac: Buffer): void {
  addon().setArpEntry(interfaceName, address, mac);
}

/**
 * Send `datagrams` from the socket `fd`, each to its (address, port) pair in `destinations`, with
 * sendmmsg on libuv's thread pool: the kernel's work for each reply runs off the event loop.
 * `done` gets how many could not be sent (-1: not attempted) and the first errno. The fd must stay
 * open until `done` is called.
 */
export function sendBatch(
  fd: number,
  datagrams: Buffer[],
  destinations: Uint32Array,
  done: (failed: number, errno: number) => void,
): void {
  addon().sendBatch(fd, datagrams, destinations, done);
}
