import { createSocket, type Socket } from "node:dgram";
import type { FileCache, FileContent } from "./file-source.js";
import { negotiate, type NegotiationLimits } from "./options.js";
import { decodePacket, encodePacket, ErrorCode, Opcode, type RequestPacket } from "./packet.js";
import { createTransfer, step, type TransferEvent, type TransferOutcome, type TransferState, type TransferStep } from "./transfer.js";

/**
 * The socket edge of one transfer: its own ephemeral-port socket (RFC 1350 §4, the server's
 * transfer ID), connected to the client so the kernel delivers it only that client's datagrams
 * (a stray from another port never reaches it) and sends need no address per packet. Runs in the
 * main thread or in a worker thread (worker-server.ts), the same code either way.
 */

export interface TftpLimits extends NegotiationLimits {
  /** Concurrent transfers in total; beyond it a request is refused with "server busy". */
  maxTransfers: number;
  /** Concurrent transfers per client address, so one machine cannot take every slot. */
  maxTransfersPerClient: number;
  initialTimeoutMs: number;
  maxTimeoutMs: number;
  maxRetries: number;
  maxRetriesUnverified: number;
}

export const DEFAULT_TFTP_LIMITS: TftpLimits = {
  maxBlockSize: 65464,
  maxWindowSize: 64,
  maxTransfers: 2048,
  // A rack behind one NAT or relay address can boot many machines at once; 128 still stops one
  // host from taking the whole server.
  maxTransfersPerClient: 128,
  initialTimeoutMs: 1000,
  maxTimeoutMs: 8000,
  maxRetries: 6,
  maxRetriesUnverified: 2,
};

/** What one transfer adds to the server's counters; summed by the server when it ends. */
export interface TransferCounters {
  bytesSent: number;
  datagramsSent: number;
  retransmissions: number;
  junkDropped: number;
}

export function emptyCounters(): TransferCounters {
  return { bytesSent: 0, datagramsSent: 0, retransmissions: 0, junkDropped: 0 };
}

/** A read request that passed the checks of port 69 (path resolved inside the root, limits). */
export interface TransferJob {
  clientAddress: string;
  clientPort: number;
  bindAddress: string;
  request: RequestPacket;
  /** The resolved real path and the identity of the file version that was checked. */
  file: { path: string; size: number; dev: number; ino: number; mtimeMs: number };
}

export interface TransferEnd {
  outcome: TransferOutcome;
  counters: TransferCounters;
  /** Size after mode conversion, blksize and windowsize granted; for the log line. */
  size?: number;
  blockSize?: number;
  windowSize?: number;
  ms: number;
}

export interface RunningTransfer {
  /** Stop now (server shutdown). */
  abort(): void;
}

/**
 * Start one transfer. `onEnd` is called exactly once. A file that cannot be opened is answered with
 * an ERROR from the transfer's port.
 */
export function runTransfer(job: TransferJob, cache: FileCache, limits: TftpLimits, onEnd: (end: TransferEnd) => void): RunningTransfer {
  const startedAt = Date.now();
  const counters = emptyCounters();
  let aborted = false;
  let active: ActiveTransfer | undefined;
  let socket: Socket | undefined;
  const end = (outcome: TransferOutcome, extra: Partial<TransferEnd> = {}) => onEnd({ outcome, counters, ms: Date.now() - startedAt, ...extra });

  void (async () => {
    try {
      socket = await transferSocket(job);
    } catch (err) {
      end({ result: "failed", reason: `cannot open a transfer port: ${(err as Error).message}` });
      return;
    }
    let content: FileContent;
    try {
      content = await cache.open(job.file.path, job.file, job.request.mode === "netascii");
    } catch (err) {
      const message = err instanceof RangeError ? err.message : "cannot read file";
      socket.send(encodePacket({ opcode: Opcode.Error, code: ErrorCode.NotDefined, message }), () => socket?.close());
      end({ result: "failed", reason: `cannot open: ${(err as Error).message}` });
      return;
    }
    if (aborted) {
      socket.close();
      await content.close().catch(() => {});
      end({ result: "failed", reason: "server stopping" });
      return;
    }
    const params = negotiate(job.request.options, content.size, limits);
    const state = createTransfer({
      size: content.size,
      blockSize: params.blockSize,
      windowSize: params.windowSize,
      optionAck: params.acknowledged.length > 0 ? params.acknowledged : undefined,
      // RFC 2349: the client's timeout is the retransmission interval; it is not backed off.
      initialTimeoutMs: params.timeoutMs ?? limits.initialTimeoutMs,
      maxTimeoutMs: params.timeoutMs ?? limits.maxTimeoutMs,
      maxRetries: limits.maxRetries,
      maxRetriesUnverified: limits.maxRetriesUnverified,
    });
    active = new ActiveTransfer(socket, content, state, counters, (outcome) =>
      end(outcome, { size: content.size, blockSize: params.blockSize, windowSize: params.windowSize }),
    );
    active.feed({ type: "start" });
  })();

  return {
    abort() {
      aborted = true;
      active?.finish({ result: "failed", reason: "server stopping" });
    },
  };
}

function transferSocket(job: TransferJob): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: "udp4" });
    socket.once("error", reject);
    socket.bind({ address: job.bindAddress, port: 0, exclusive: true }, () => {
      socket.connect(job.clientPort, job.clientAddress, () => {
        socket.off("error", reject);
        resolve(socket);
      });
    });
  });
}

/** One running transfer: its socket, its state, its timer. */
class ActiveTransfer {
  private state: TransferState;
  private timer: NodeJS.Timeout | undefined;
  /** When the retransmission is due; a late timer re-arms instead of firing (cheaper than re-creating it per ACK). */
  private deadline = 0;
  /** Bumped by every step that sends, so an asynchronous send of an older window stops. */
  private generation = 0;
  private closed = false;
  readonly startedAt = Date.now();

  constructor(
    private readonly socket: Socket,
    private readonly content: FileContent,
    state: TransferState,
    private readonly counters: TransferCounters,
    private readonly onEnd: (outcome: TransferOutcome) => void,
  ) {
    this.state = state;
    socket.on("message", (msg) => this.onDatagram(msg));
    socket.on("error", (err) => this.finish({ result: "failed", reason: `socket error: ${err.message}` }));
  }

  feed(event: TransferEvent): void {
    if (this.closed) return;
    this.apply(step(this.state, event));
  }

  private onDatagram(msg: Buffer): void {
    // Fast path for the one datagram that matters per block.
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === Opcode.Ack) {
      this.feed({ type: "ack", block: (msg[2]! << 8) | msg[3]! });
      return;
    }
    try {
      const packet = decodePacket(msg);
      if (packet.opcode === Opcode.Error) {
        this.feed({ type: "client-error", code: packet.code, message: packet.message });
        return;
      }
    } catch {
      /* counted below */
    }
    this.counters.junkDropped++;
  }

  private apply(result: TransferStep): void {
    const wasRetries = this.state.retries;
    this.state = result.state;
    // Only a step that sends supersedes a window still being read from disk; a duplicate ACK
    // (which sends nothing) must not cut that window short.
    if (result.send.length > 0 || result.outcome) this.generation++;
    for (const action of result.send) {
      switch (action.kind) {
        case "oack":
          this.sendRaw(encodePacket({ opcode: Opcode.OptionAck, options: action.options }));
          break;
        case "error":
          this.sendRaw(encodePacket({ opcode: Opcode.Error, code: action.code, message: action.message }));
          break;
        case "data":
          if (result.state.retries > wasRetries) this.counters.retransmissions += action.last - action.first + 1;
          this.sendData(action.first, action.last);
          break;
      }
    }
    if (result.timer === "cancel") this.clearTimer();
    else if (result.timer !== "keep") this.armTimer(result.timer);
    if (result.outcome) this.finish(result.outcome);
  }

  private sendRaw(datagram: Buffer): void {
    if (this.closed) return;
    this.counters.datagramsSent++;
    this.socket.send(datagram);
  }

  private sendData(first: number, last: number): void {
    const blockSize = this.state.config.blockSize;
    for (let block = first; block <= last; block++) {
      const datagram = this.content.peek(block, blockSize);
      if (datagram === undefined) {
        // Not in memory: read it (and what follows) from disk, then go on from there.
        void this.sendDataFromDisk(block, last, this.generation);
        return;
      }
      this.sendDatagram(datagram);
    }
  }

  private sendDatagram(datagram: Buffer): void {
    if (this.closed) return;
    this.counters.datagramsSent++;
    this.counters.bytesSent += datagram.length - 4;
    this.socket.send(datagram);
  }

  private async sendDataFromDisk(first: number, last: number, generation: number): Promise<void> {
    const blockSize = this.state.config.blockSize;
    try {
      for (let block = first; block <= last; block++) {
        let datagram = this.content.peek(block, blockSize);
        if (datagram === undefined) {
          await this.content.load(block, blockSize);
          // A newer step (an ACK, a timeout) took over while the disk was read.
          if (generation !== this.generation || this.closed) return;
          datagram = this.content.peek(block, blockSize);
          if (datagram === undefined) throw new Error(`block ${block} not readable`);
        }
        this.sendDatagram(datagram);
      }
    } catch (err) {
      this.finish({ result: "failed", reason: `read error: ${(err as Error).message}` });
    }
  }

  private armTimer(ms: number): void {
    this.deadline = Date.now() + ms;
    if (this.timer === undefined) this.timer = setTimeout(() => this.onTimer(), ms);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private onTimer(): void {
    this.timer = undefined;
    const now = Date.now();
    if (now < this.deadline) {
      this.timer = setTimeout(() => this.onTimer(), this.deadline - now);
      return;
    }
    this.feed({ type: "timeout" });
  }

  finish(outcome: TransferOutcome): void {
    if (this.closed) return;
    this.closed = true;
    this.state = { ...this.state, finished: true };
    this.clearTimer();
    this.generation++;
    // Close after pending sends (the final ERROR) have left.
    setImmediate(() => {
      try {
        this.socket.close();
      } catch {
        /* already closed */
      }
    });
    void this.content.close().catch(() => {});
    this.onEnd(outcome);
  }
}

