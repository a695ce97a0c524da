import type { RequestRateLimits, TransferBudgetLimits } from "./admission.js";
import { type DatagramRun, type FileCache, type FileContent, generatedContent } from "./file-source.js";
import { negotiate, type NegotiationLimits } from "./options.js";
import { decodePacket, encodePacket, ErrorCode, Opcode, type RequestPacket } from "./packet.js";
import {
  createTransfer,
  isVerified,
  step,
  wireBlock,
  type TransferEvent,
  type TransferOutcome,
  type TransferState,
  type TransferStep,
} from "./transfer.js";
import { openTransferSocket, type TransferSocket } from "./transfer-socket.js";

/**
 * The socket edge of one transfer: its own ephemeral-port socket (transfer-socket.ts) fed to the
 * pure state machine (transfer.ts). Runs in the main thread or in a worker thread
 * (worker-server.ts), the same code either way.
 */

export interface TftpLimits extends NegotiationLimits, TransferBudgetLimits, RequestRateLimits {
  initialTimeoutMs: number;
  maxTimeoutMs: number;
  /** The retransmission interval before the client acknowledged anything (transfer.ts). */
  unverifiedTimeoutMs: number;
  maxRetries: number;
  maxRetriesUnverified: number;
}

export const DEFAULT_TFTP_LIMITS: TftpLimits = {
  maxBlockSize: 65464,
  maxWindowSize: 64,
  maxClientTimeoutS: 10,
  maxTransfers: 2048,
  // A rack behind one NAT or relay address can boot many machines at once; 128 still stops one
  // host from taking the whole server.
  maxTransfersPerClient: 128,
  // Unverified transfers are evicted oldest first when these are full (admission.ts): 256 admitted
  // at 1,000 RRQs/s (the rate cap below) still leaves a real client 0.25 s to send its first ACK.
  maxUnverifiedTransfers: 256,
  maxUnverifiedPerClient: 32,
  // A PXE boot is 2 RRQs (the tsize probe, then the file); pxelinux tries a dozen config names in a
  // row; the burst leaves room for a rack behind one address. Towards an address someone forged,
  // that is at most 100 × 3 small datagrams at once, then 20 × 3 a second. The server-wide cap
  // bounds the work of port 69 whatever the number of forged addresses.
  requestsPerSecondPerClient: 20,
  requestBurstPerClient: 100,
  requestsPerSecond: 1000,
  requestBurst: 1000,
  initialTimeoutMs: 1000,
  maxTimeoutMs: 8000,
  // Six sends 1 s apart, then the slot is free (6 s). Not fewer: on a lossy link a firmware whose
  // ACK 0 was lost re-ACKs only when the OACK comes again (curl waits a minute on its own timer,
  // EDK2 3 s), and three sends lost one such transfer in a thousand at 5% loss
  // (test/tftp/loss.test.ts hung on it). Flooders are held off by the unverified budget's
  // eviction of the oldest, not by this timer.
  unverifiedTimeoutMs: 1000,
  maxRetries: 6,
  maxRetriesUnverified: 5,
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
  /** The content itself, made for this request (server.ts `TftpSource` bytes): `file` is not read. */
  generated?: Uint8Array;
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
  /**
   * Stop now, silently, unless the client has acknowledged something: the server needs the slot
   * of a transfer that may have a forged address (admission.ts). Sent across threads, so the
   * client may have acknowledged since the server decided; then the transfer goes on.
   */
  evict(): void;
  /**
   * Stop now, silently: the client sent a new request from this transfer's address and port after
   * the last block went out, so it has moved on (server.ts). Ends as `aborted`.
   */
  supersede(): void;
}

export interface TransferEvents {
  /** The client acknowledged for the first time (called at most once, before `onEnd`). */
  onVerified(): void;
  /**
   * The last block went out for the first time (at most once, before `onEnd`): from now on only
   * the final ACK is missing, and the client may have left without it reaching us (server.ts).
   */
  onLastBlockSent(): void;
  /** Called exactly once. */
  onEnd(end: TransferEnd): void;
}

/**
 * Start one transfer. A file that cannot be opened is answered with an ERROR from the transfer's
 * port.
 */
export function runTransfer(
  job: TransferJob,
  cache: FileCache,
  limits: TftpLimits,
  events: TransferEvents,
): RunningTransfer {
  const startedAt = Date.now();
  const counters = emptyCounters();
  let aborted = false;
  let active: ActiveTransfer | undefined;
  const end = (outcome: TransferOutcome, extra: Partial<TransferEnd> = {}) =>
    events.onEnd({ outcome, counters, ms: Date.now() - startedAt, ...extra });
  // Events arrive from the event loop, so `active` is set by the time the first one does.
  const open = (): TransferSocket =>
    openTransferSocket(job.bindAddress, job.clientAddress, job.clientPort, {
      onDatagram: (buffer, length, replied) => active?.onDatagram(buffer, length, replied),
      onError: (err) => active?.finish({ result: "failed", reason: `socket error: ${err.message}` }),
    });

  void (async () => {
    let content: FileContent;
    try {
      content = job.generated
        ? generatedContent(job.generated, job.request.mode === "netascii")
        : await cache.open(job.file.path, job.file, job.request.mode === "netascii");
    } catch (err) {
      const message = err instanceof RangeError ? err.message : "cannot read file";
      try {
        const socket = open();
        socket.send(encodePacket({ opcode: Opcode.Error, code: ErrorCode.NotDefined, message }));
        socket.close();
      } catch {
        /* the ERROR is a courtesy; the client's timeout tells it as much */
      }
      end({ result: "failed", reason: `cannot open: ${(err as Error).message}` });
      return;
    }
    let socket: TransferSocket;
    try {
      if (aborted) throw new Error("stopped before it started");
      socket = open();
    } catch (err) {
      await content.close().catch(() => {});
      end({
        result: "failed",
        reason: aborted ? "stopped before it started" : `cannot open a transfer port: ${(err as Error).message}`,
      });
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
      // A client that negotiated its timeout retransmits on it; giving up sooner would drop a real
      // client whose first ACK was lost. A forged one holds its slot longer (≤ 3 × 10 s, see
      // maxClientTimeoutS), but an unverified slot is evicted when newer requests need it.
      unverifiedTimeoutMs: params.timeoutMs ?? limits.unverifiedTimeoutMs,
      maxRetries: limits.maxRetries,
      maxRetriesUnverified: limits.maxRetriesUnverified,
    });
    active = new ActiveTransfer(socket, content, state, counters, events, (outcome) =>
      end(outcome, { size: content.size, blockSize: params.blockSize, windowSize: params.windowSize }),
    );
    active.feed({ type: "start" });
  })();

  const evicted = {
    result: "failed",
    reason: "evicted: never acknowledged while unverified transfers were at their limit",
  } as const;
  return {
    abort() {
      aborted = true;
      active?.finish({ result: "failed", reason: "server stopping" });
    },
    evict() {
      // Still opening: nothing was sent yet, so nothing was acknowledged.
      if (!active) aborted = true;
      else if (!active.verified) active.finish(evicted);
    },
    supersede() {
      // Not still opening: only an acknowledged transfer is superseded.
      active?.finish({ result: "aborted", reason: "the client asked again from the same port" });
    },
  };
}

/** One running transfer: its socket, its state, its timer. */
class ActiveTransfer {
  private state: TransferState;
  private timer: NodeJS.Timeout | undefined;
  /** When the retransmission is due; a late timer re-arms instead of firing (cheaper than re-creating it per ACK). */
  private deadline = 0;
  /** Bumped by every step that sends, so an asynchronous send of an older window stops. */
  private generation = 0;
  /**
   * What is armed on the socket (armReply): the ACK, the state machine's step for it, and the run
   * that step sends (the addon holds its own reference to the run's bytes while armed).
   */
  private armed: { ack: number; step: TransferStep; run: DatagramRun } | undefined;
  private closed = false;
  /** The client has acknowledged something (transfer.ts isVerified); the server was told. */
  verified = false;
  private lastBlockSent = false;

  constructor(
    private readonly socket: TransferSocket,
    private readonly content: FileContent,
    state: TransferState,
    private readonly counters: TransferCounters,
    private readonly events: Pick<TransferEvents, "onVerified" | "onLastBlockSent">,
    private readonly onEnd: (outcome: TransferOutcome) => void,
  ) {
    this.state = state;
  }

  feed(event: TransferEvent): void {
    if (this.closed) return;
    this.apply(step(this.state, event), -1);
  }

  /** `replied`: datagrams the armed reply already sent for this ACK (-1: it did not fire). */
  private onAck(block: number, replied: number): void {
    if (this.closed) return;
    const armed = this.armed;
    // The state machine already answered this ACK when the reply was armed (pure: same state, same
    // event, same step), so that answer is reused rather than computed twice per block.
    if (armed && replied >= 0 && armed.ack === block) this.apply(armed.step, replied);
    else this.apply(step(this.state, { type: "ack", block }), replied);
  }

  /** The datagram is `buffer`'s first `length` bytes, valid only during the call (transfer-socket.ts). */
  onDatagram(buffer: Buffer, length: number, replied: number): void {
    if (length > buffer.length) {
      this.counters.junkDropped++;
      return;
    }
    // Fast path for the one datagram that matters per block.
    if (length >= 4 && buffer[0] === 0 && buffer[1] === Opcode.Ack) {
      this.onAck((buffer[2]! << 8) | buffer[3]!, replied);
      return;
    }
    try {
      const packet = decodePacket(buffer.subarray(0, length));
      if (packet.opcode === Opcode.Error) {
        this.feed({ type: "client-error", code: packet.code, message: packet.message });
        return;
      }
    } catch {
      /* counted below */
    }
    this.counters.junkDropped++;
  }

  private apply(result: TransferStep, replied: number): void {
    const wasRetries = this.state.retries;
    const changed = result.state !== this.state;
    // The armed reply fired: this is the armed step, and the socket already sent its data.
    const sentByArmed = replied >= 0 && result === this.armed?.step ? this.armed.run : undefined;
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
          if (sentByArmed) {
            // Sent (or queued) when the ACK came in; only a full queue loses part of it, and the
            // timer recovers that like a loss on the wire.
            this.countSent(sentByArmed, replied);
          } else {
            this.sendData(action.first, action.last);
          }
          break;
      }
    }
    if (!this.verified && isVerified(result.state)) {
      this.verified = true;
      this.events.onVerified();
    }
    if (!this.lastBlockSent && result.state.sent === result.state.lastBlock && !result.outcome) {
      this.lastBlockSent = true;
      this.events.onLastBlockSent();
    }
    if (result.timer === "cancel") this.clearTimer();
    else if (result.timer !== "keep") this.armTimer(result.timer);
    if (result.outcome) this.finish(result.outcome);
    // A duplicate ACK changes nothing, and what is armed stays right. (The OACK step sends
    // without changing the state.)
    else if (changed || result.send.length > 0) this.armReply();
  }

  /**
   * Tell the socket what to send when the ACK that completes this window arrives, so it goes out
   * without waiting for JavaScript. What to send is the state machine's own answer to that ACK,
   * asked now (it is pure); only a window that is wholly in memory is armed, otherwise the ACK
   * takes the ordinary path. Not while an OACK waits for ACK 0: peeking the first window would
   * frame the file at the negotiated block size for a client that may never answer (its address
   * may be forged), and ACK 0 comes once per transfer.
   */
  private armReply(): void {
    if (this.state.acked < 0) {
      if (this.armed) this.socket.armReply(0, undefined, 0);
      this.armed = undefined;
      return;
    }
    const expected = wireBlock(this.state.sent);
    const next = step(this.state, { type: "ack", block: expected });
    const action = next.send.length === 1 && !next.outcome ? next.send[0] : undefined;
    const blockSize = this.state.config.blockSize;
    if (action?.kind === "data") {
      const run = this.content.peek(action.first, action.last, blockSize);
      if (run?.blocks === action.last - action.first + 1) {
        this.armed = { ack: expected, step: next, run };
        this.socket.armReply(expected, run.bytes, blockSize + 4);
        return;
      }
    }
    this.armed = undefined;
    this.socket.armReply(expected, undefined, 0);
  }

  private sendRaw(datagram: Buffer): void {
    if (this.closed) return;
    this.counters.datagramsSent++;
    this.guarded(() => this.socket.send(datagram));
  }

  private sendData(first: number, last: number): void {
    const blockSize = this.state.config.blockSize;
    for (let block = first; block <= last; ) {
      const run = this.content.peek(block, last, blockSize);
      if (run === undefined) {
        // Not in memory: read it (and what follows) from disk, then go on from there.
        void this.sendDataFromDisk(block, last, this.generation);
        return;
      }
      if (!this.sendRun(run)) return;
      block += run.blocks;
    }
  }

  /** False when not all of it was taken (send buffer and queue full: the timeout resends, as after a loss). */
  private sendRun(run: DatagramRun): boolean {
    if (this.closed) return false;
    const sent = this.guarded(() => this.socket.sendRun(run.bytes, this.state.config.blockSize + 4)) ?? 0;
    this.countSent(run, sent);
    return sent === run.blocks;
  }

  private countSent(run: DatagramRun, sent: number): void {
    this.counters.datagramsSent += sent;
    // Every datagram of the run but the file's last is a full block.
    this.counters.bytesSent += sent === run.blocks ? run.bytes.length - 4 * sent : sent * this.state.config.blockSize;
  }

  private async sendDataFromDisk(first: number, last: number, generation: number): Promise<void> {
    const blockSize = this.state.config.blockSize;
    try {
      for (let block = first; block <= last; ) {
        let run = this.content.peek(block, last, blockSize);
        if (run === undefined) {
          await this.content.load(block, blockSize);
          // A newer step (an ACK, a timeout) took over while the disk was read.
          if (generation !== this.generation || this.closed) return;
          run = this.content.peek(block, last, blockSize);
          if (run === undefined) throw new Error(`block ${block} not readable`);
        }
        if (!this.sendRun(run)) return;
        block += run.blocks;
      }
      // The ACK to this window can now be answered from memory too (the read-ahead is in).
      if (generation === this.generation && !this.closed) this.armReply();
    } catch (err) {
      this.finish({ result: "failed", reason: `read error: ${(err as Error).message}` });
    }
  }

  /**
   * A send on a connected socket fails at once when the client's host answered an earlier datagram
   * with ICMP port unreachable (the client went away): that ends the transfer.
   */
  private guarded<T>(send: () => T): T | undefined {
    try {
      return send();
    } catch (err) {
      this.finish({ result: "failed", reason: `socket error: ${(err as Error).message}` });
      return undefined;
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
    // Sends are synchronous (transfer-socket.ts): the final ERROR has left already.
    this.socket.close();
    void this.content.close().catch(() => {});
    this.onEnd(outcome);
  }
}
