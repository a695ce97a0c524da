import { getSystemErrorName } from "node:util";
import { loadAddon } from "../native/load-addon.js";

/**
 * The socket of one transfer (RFC 1350 §4: the server's transfer ID is its own port), connected to
 * the client so the kernel delivers only that client's datagrams and sends need no address.
 *
 * Both directions go through the native addon (native/udp-transfer-socket.c), because this is the
 * per-block path: a window of DATA leaves in one system call (UDP segmentation offload, else
 * sendmmsg) instead of one dgram `send` per datagram, and an ACK arrives as a length into a reused
 * buffer instead of dgram's fresh Buffer and sender object per datagram. The fd is watched on this
 * thread's event loop, so an ACK is still ordinary I/O to the event loop.
 */

type NativeHandle = object & { readonly __transferSocket: unique symbol };

interface TransferSocketAddon {
  openTransferSocket(
    localAddress: string,
    clientAddress: string,
    clientPort: number,
    sendBufferBytes: number,
    receiveBuffer: Buffer,
    onDatagram: (lengthOrNegativeErrno: number, replied: number) => void,
  ): NativeHandle;
  sendRun(handle: NativeHandle, run: Buffer, segmentSize: number): number;
  armReply(handle: NativeHandle, ackBlock: number, run: Buffer | undefined, segmentSize: number): void;
  closeTransferSocket(handle: NativeHandle): void;
}

const addon = () => loadAddon<TransferSocketAddon>("udp_transfer_socket", "the TFTP server");

/** Room for several windows of 64 datagrams of 1.5 KB, so the addon's queue is the exception. */
const SEND_BUFFER_BYTES = 1 << 20;
/** Clients send ACKs (4 bytes) and ERRORs (a short message); anything longer is junk, and counted as such. */
const RECEIVE_BUFFER_BYTES = 1024;

export interface TransferSocket {
  /**
   * Send `run` as consecutive datagrams of `segmentSize` bytes (the last may be shorter); what the
   * send buffer cannot take now is copied and sent, in order, when it drains. Returns how many were
   * sent or queued: fewer than all only when that queue is full too, and the transfer's
   * retransmission recovers the rest as it would a loss on the wire. Throws when the socket failed
   * (ICMP port unreachable: the client is gone).
   */
  sendRun(run: Buffer, segmentSize: number): number;
  /** Send one datagram; false when it had to be dropped (send buffer and queue full). */
  send(datagram: Buffer): boolean;
  /**
   * When the next datagram is ACK `ackBlock` (16-bit, as on the wire), send `run` at once, before
   * any JavaScript runs, and report it with the ACK (`replied`). One shot; a later call replaces
   * it; `undefined` disarms. The caller must already know that this is what it would send. The
   * addon keeps `run` alive (a reference of its own) until it fires, is replaced, or the socket closes.
   */
  armReply(ackBlock: number, run: Buffer | undefined, segmentSize: number): void;
  close(): void;
}

export interface TransferSocketEvents {
  /**
   * A datagram from the client: its first `length` bytes are in `buffer`, which the next datagram
   * overwrites, so read it before returning (no copy is made per datagram). A `length` beyond
   * `buffer.length` was cut short: longer than any client message, junk. `replied`: how many
   * datagrams of the armed reply this ACK sent, or -1 when it did not fire.
   */
  onDatagram(buffer: Buffer, length: number, replied: number): void;
  onError(error: Error): void;
}

/** Opens the socket; throws when it cannot (no free port, bad address). */
export function openTransferSocket(
  localAddress: string,
  clientAddress: string,
  clientPort: number,
  events: TransferSocketEvents,
): TransferSocket {
  const native = addon();
  const receiveBuffer = Buffer.alloc(RECEIVE_BUFFER_BYTES);
  let closed = false;
  const handle = native.openTransferSocket(
    localAddress,
    clientAddress,
    clientPort,
    SEND_BUFFER_BYTES,
    receiveBuffer,
    (length, replied) => {
      if (closed) return;
      // A negative length is -errno, as libuv's own errors are.
      if (length < 0) events.onError(new Error(getSystemErrorName(length)));
      else events.onDatagram(receiveBuffer, length, replied);
    },
  );
  return {
    sendRun: (run, segmentSize) => (closed ? 0 : native.sendRun(handle, run, segmentSize)),
    send: (datagram) => !closed && native.sendRun(handle, datagram, datagram.length) === 1,
    armReply(ackBlock, run, segmentSize) {
      if (closed) return;
      native.armReply(handle, ackBlock, run, segmentSize);
    },
    close() {
      if (closed) return;
      closed = true;
      native.closeTransferSocket(handle);
    },
  };
}
