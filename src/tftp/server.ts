import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { join } from "node:path";
import type { Logger } from "../log.js";
import { NotFoundError, PathEscapeError } from "../errors.js";
import { resolveInside } from "../files/safe-path.js";
import { FileCache, type FileContent } from "./file-source.js";
import { negotiate, type NegotiationLimits } from "./options.js";
import { decodePacket, encodePacket, ErrorCode, Opcode, type RequestPacket } from "./packet.js";
import { createTransfer, step, type TransferEvent, type TransferState, type TransferStep } from "./transfer.js";

/**
 * The socket edge of the TFTP server: port 69 takes requests, and each transfer gets its own
 * ephemeral-port socket (RFC 1350 §4, the server's transfer ID), connected to the client so the
 * kernel delivers it only that client's datagrams and sends need no address per packet.
 */

export interface TftpServerOptions {
  /** The served directory; every name is resolved inside it by resolveInside. */
  root: string;
  bindAddress: string;
  port: number;
  logger: Logger;
  cache?: FileCache;
  limits?: Partial<TftpLimits>;
}

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

/** Counters for metrics; plain numbers, read with `stats()`. */
export interface TftpStats {
  transfersStarted: number;
  transfersCompleted: number;
  transfersFailed: number;
  transfersActive: number;
  requestsRefused: number;
  junkDropped: number;
  bytesSent: number;
  datagramsSent: number;
  retransmissions: number;
  cacheHits: number;
  cacheMisses: number;
  cacheBytes: number;
}

/** The TFTP error a failed request is answered with. Pure. */
export function refusalFor(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof PathEscapeError) return { code: ErrorCode.AccessViolation, message: "access violation" };
  if (error instanceof NotFoundError) return { code: ErrorCode.FileNotFound, message: "file not found" };
  if (error instanceof RangeError) return { code: ErrorCode.NotDefined, message: error.message };
  return { code: ErrorCode.NotDefined, message: "cannot read file" };
}

type Counters = Omit<TftpStats, "transfersActive" | "cacheHits" | "cacheMisses" | "cacheBytes">;

/** One running transfer: its socket, its state, its timer. */
class ActiveTransfer {
  private state: TransferState;
  private timer: NodeJS.Timeout | undefined;
  /** When the retransmission is due; a late timer re-arms instead of firing (cheaper than re-creating it per ACK). */
  private deadline = 0;
  /** Bumped on every step so an asynchronous send of an older window stops. */
  private generation = 0;
  private closed = false;
  readonly startedAt = Date.now();

  constructor(
    private readonly socket: Socket,
    private readonly content: FileContent,
    state: TransferState,
    private readonly counters: Counters,
    private readonly onEnd: (outcome: { result: "completed" } | { result: "failed"; reason: string }) => void,
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

  finish(outcome: { result: "completed" } | { result: "failed"; reason: string }): void {
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

export class TftpServer {
  private socket: Socket | undefined;
  private root: string;
  private readonly logger: Logger;
  private readonly cache: FileCache;
  readonly limits: TftpLimits;
  /** Keyed by `address:port`: a retransmitted RRQ must not start a second transfer. */
  private readonly transfers = new Map<string, ActiveTransfer | "opening">();
  private readonly perClient = new Map<string, number>();
  private readonly counters: Counters = {
    transfersStarted: 0,
    transfersCompleted: 0,
    transfersFailed: 0,
    requestsRefused: 0,
    junkDropped: 0,
    bytesSent: 0,
    datagramsSent: 0,
    retransmissions: 0,
  };
  private bound: { address: string; port: number } | undefined;

  constructor(private options: TftpServerOptions) {
    this.root = options.root;
    this.logger = options.logger;
    this.cache = options.cache ?? new FileCache();
    this.limits = { ...DEFAULT_TFTP_LIMITS, ...options.limits };
  }

  get listening(): boolean {
    return this.socket !== undefined;
  }

  /** The bound address and port (port 0 in the options becomes the real one here). */
  address(): { address: string; port: number } {
    if (!this.bound) throw new Error("TFTP server is not listening");
    return this.bound;
  }

  stats(): TftpStats {
    return {
      ...this.counters,
      transfersActive: this.transfers.size,
      cacheHits: this.cache.hits,
      cacheMisses: this.cache.misses,
      cacheBytes: this.cache.cachedBytes,
    };
  }

  async start(): Promise<void> {
    this.socket = await this.bindRequestSocket(this.options.bindAddress, this.options.port);
  }

  /** Point new requests at another root, and move the request port if it changed. */
  async reconfigure(root: string, bindAddress: string, port: number): Promise<void> {
    if (bindAddress !== this.options.bindAddress || port !== this.options.port) {
      const next = await this.bindRequestSocket(bindAddress, port);
      const old = this.socket;
      this.socket = next;
      if (old) await new Promise<void>((resolve) => old.close(() => resolve()));
    }
    this.root = root;
    this.options = { ...this.options, root, bindAddress, port };
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    this.bound = undefined;
    for (const transfer of this.transfers.values()) {
      if (transfer !== "opening") transfer.finish({ result: "failed", reason: "server stopping" });
    }
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private bindRequestSocket(address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: "udp4" });
      socket.once("error", reject);
      socket.bind({ address, port, exclusive: true }, () => {
        socket.off("error", reject);
        // Nothing from the network may crash the daemon; a socket error is logged and serving goes on.
        socket.on("error", (err) => this.logger.warn({ err }, "tftp request socket error"));
        socket.on("message", (msg, rinfo) => this.onRequest(msg, rinfo));
        const info = socket.address();
        this.bound = { address: info.address, port: info.port };
        resolve(socket);
      });
    });
  }

  private refuse(rinfo: RemoteInfo, code: ErrorCode, message: string): void {
    this.counters.requestsRefused++;
    // An ERROR is small (no amplification) and goes from port 69, where every client listens for
    // the first answer; no socket is spent on a refusal.
    this.socket?.send(encodePacket({ opcode: Opcode.Error, code, message }), rinfo.port, rinfo.address);
  }

  private onRequest(msg: Buffer, rinfo: RemoteInfo): void {
    let request: RequestPacket;
    try {
      const packet = decodePacket(msg);
      if (packet.opcode === Opcode.WriteRequest) {
        this.logger.info({ client: rinfo.address, file: packet.filename }, "tftp write request refused (read-only server)");
        this.refuse(rinfo, ErrorCode.AccessViolation, "server is read-only");
        return;
      }
      if (packet.opcode !== Opcode.ReadRequest) {
        // DATA/ACK/ERROR belong on a transfer port; on port 69 they are strays or probes.
        this.counters.junkDropped++;
        return;
      }
      request = packet;
    } catch {
      this.counters.junkDropped++;
      return;
    }
    const key = `${rinfo.address}:${rinfo.port}`;
    if (this.transfers.has(key)) return; // the client repeated its RRQ; the transfer already answers
    if (this.transfers.size >= this.limits.maxTransfers) {
      this.refuse(rinfo, ErrorCode.NotDefined, "server busy, try again");
      return;
    }
    const clientCount = this.perClient.get(rinfo.address) ?? 0;
    if (clientCount >= this.limits.maxTransfersPerClient) {
      this.refuse(rinfo, ErrorCode.NotDefined, "too many transfers from this address");
      return;
    }
    if (request.mode === "mail") {
      // RFC 1350 mail mode delivers to a user; it has no meaning for a read.
      this.refuse(rinfo, ErrorCode.IllegalOperation, "mail mode is not supported");
      return;
    }
    this.transfers.set(key, "opening");
    this.perClient.set(rinfo.address, clientCount + 1);
    void this.open(key, request, rinfo);
  }

  private release(key: string, address: string): void {
    this.transfers.delete(key);
    const n = (this.perClient.get(address) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(address);
    else this.perClient.set(address, n);
  }

  private async open(key: string, request: RequestPacket, rinfo: RemoteInfo): Promise<void> {
    const log = { client: rinfo.address, port: rinfo.port, file: request.filename };
    let content: FileContent;
    try {
      // RFC 1350 names are relative to the server's directory; an absolute name is refused
      // rather than taken as root-relative (PRODUCT.md §4: absolute paths are refused everywhere).
      const resolved = await resolveInside(this.root, request.filename);
      content = await this.cache.open(resolved.path, resolved.stats, request.mode === "netascii");
    } catch (err) {
      this.release(key, rinfo.address);
      const refusal = refusalFor(err);
      this.logger.info({ ...log, code: refusal.code, reason: (err as Error).message }, "tftp read refused");
      this.refuse(rinfo, refusal.code, refusal.message);
      return;
    }
    let socket: Socket;
    try {
      socket = await this.transferSocket(rinfo);
    } catch (err) {
      this.release(key, rinfo.address);
      await content.close().catch(() => {});
      this.logger.warn({ ...log, err }, "tftp cannot open a transfer socket");
      this.refuse(rinfo, ErrorCode.NotDefined, "server cannot open a transfer port");
      return;
    }
    if (!this.socket) {
      // Stopped while opening.
      this.release(key, rinfo.address);
      socket.close();
      await content.close().catch(() => {});
      return;
    }
    const params = negotiate(request.options, content.size, this.limits);
    const state = createTransfer({
      size: content.size,
      blockSize: params.blockSize,
      windowSize: params.windowSize,
      optionAck: params.acknowledged.length > 0 ? params.acknowledged : undefined,
      // RFC 2349: the client's timeout is the retransmission interval; it is not backed off.
      initialTimeoutMs: params.timeoutMs ?? this.limits.initialTimeoutMs,
      maxTimeoutMs: params.timeoutMs ?? this.limits.maxTimeoutMs,
      maxRetries: this.limits.maxRetries,
      maxRetriesUnverified: this.limits.maxRetriesUnverified,
    });
    this.counters.transfersStarted++;
    const transfer = new ActiveTransfer(socket, content, state, this.counters, (outcome) => {
      this.release(key, rinfo.address);
      const ms = Date.now() - transfer.startedAt;
      if (outcome.result === "completed") {
        this.counters.transfersCompleted++;
        this.logger.info({ ...log, bytes: content.size, blksize: params.blockSize, windowsize: params.windowSize, ms }, "tftp transfer completed");
      } else {
        this.counters.transfersFailed++;
        this.logger.warn({ ...log, reason: outcome.reason, ms }, "tftp transfer failed");
      }
    });
    this.transfers.set(key, transfer);
    transfer.feed({ type: "start" });
  }

  private transferSocket(rinfo: RemoteInfo): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: "udp4" });
      socket.once("error", reject);
      const address = this.bound?.address ?? this.options.bindAddress;
      socket.bind({ address, port: 0, exclusive: true }, () => {
        socket.connect(rinfo.port, rinfo.address, () => {
          socket.off("error", reject);
          resolve(socket);
        });
      });
    });
  }
}

/** `<stateDir>/ipxe`, the directory TFTP serves (docs/LAYOUT.md). */
export function tftpRoot(stateDir: string): string {
  return join(stateDir, "ipxe");
}
