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
  watchDatagrams(fd: number, onBatch: DatagramBatchListener): DatagramWatcher;
  closeWatcher(watcher: DatagramWatcher): void;
}

/** The native reader of one socket (opaque to JavaScript). */
export type DatagramWatcher = { readonly __brand: "DatagramWatcher" };

/**
 * A batch of datagrams read at once: their bytes packed one after the other in `data`, and for
 * each, four entries of `table`: offset, length, sender address (host order), sender port. On a
 * socket error both are null and `errno` says which.
 */
export type DatagramBatchListener = (data: Buffer | null, table: Uint32Array | null, errno: number) => void;

/** Words per datagram in a batch's table. */
export const BATCH_ENTRY = 4;

const addon = () => loadAddon<DeviceSocketAddon>("udp_device_socket", "the DHCP server");

/**
 * A UDP socket bound to `interfaceName` and `0.0.0.0:port`, as a file descriptor for
 * `watchDatagrams` (server.ts) or `dgram` (doctor) to read: it receives only what arrives on that interface and sends only
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
 * sendmmsg: now, and what the send buffer cannot take yet from libuv's thread pool. `done` gets how
 * many could not be sent (-1: not attempted) and the first errno; it may be called before this
 * returns. The fd must stay open until `done` is called.
 */
export function sendBatch(
  fd: number,
  datagrams: Buffer[],
  destinations: Uint32Array,
  done: (failed: number, errno: number) => void,
): void {
  addon().sendBatch(fd, datagrams, destinations, done);
}

/**
 * Read `fd` from now on (it is taken over, and closed by `closeWatcher`): every wakeup of the
 * event loop reads what the kernel holds, up to 256 datagrams, with recvmmsg, and calls `onBatch`
 * once per 64 (native/udp-device-socket.c).
 */
export function watchDatagrams(fd: number, onBatch: DatagramBatchListener): DatagramWatcher {
  return addon().watchDatagrams(fd, onBatch);
}

/** Stop reading; the descriptor is closed once the event loop lets go of it. */
export function closeWatcher(watcher: DatagramWatcher): void {
  addon().closeWatcher(watcher);
}
