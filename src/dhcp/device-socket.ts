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
 * out of it. The receive buffer (about 1300 requests) absorbs a rack powering on at once; a deeper
 * one would, past saturation, only make us answer requests the clients have already given up on.
 */
export function openDeviceSocketFd(interfaceName: string, port: number, receiveBufferBytes = 1 << 20): number {
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
