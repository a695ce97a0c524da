import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import { NotFoundError, PathEscapeError } from "../errors.js";
import { resolveInside } from "../files/safe-path.js";
import { bootloaderDir } from "../files/state-dir.js";
import { DEFAULT_CACHE_OPTIONS, FileCache, type FileCacheOptions } from "./file-source.js";
import { decodePacket, encodePacket, ErrorCode, Opcode, type RequestPacket } from "./packet.js";
import { DEFAULT_TFTP_LIMITS, runTransfer, type RunningTransfer, type TftpLimits, type TransferEnd, type TransferJob } from "./transfer-server.js";
import type { FromWorker, ToWorker, WorkerConfig } from "./worker-server.js";

export { DEFAULT_TFTP_LIMITS, type TftpLimits } from "./transfer-server.js";

/**
 * The request edge of the TFTP server: port 69 decodes requests, refuses what must be refused
 * (writes, escapes, missing files, over-limit clients) and hands each accepted read to a transfer
 * with its own port (transfer-server.ts), in this thread or in a worker thread.
 */

export interface TftpServerOptions {
  /** The served directory; every name is resolved inside it by resolveInside. */
  root: string;
  bindAddress: string;
  port: number;
  logger: Logger;
  cache?: Partial<FileCacheOptions>;
  limits?: Partial<TftpLimits>;
  /**
   * Worker threads that run the transfers (0: all in this thread). Port 69 and its checks stay
   * here either way.
   */
  workers?: number;
}

/** Counters for metrics; plain numbers, read with `stats()`. */
export interface TftpStats {
  transfersStarted: number;
  transfersCompleted: number;
  transfersFailed: number;
  /** Ended by the client with an ERROR (PXE ROMs probing `tsize` do this on every boot). */
  transfersAborted: number;
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

interface TransferWorker {
  worker: Worker;
  active: number;
  cache: { hits: number; misses: number; bytes: number };
  /** Transfer ids handed to it and not yet ended. */
  pending: Set<number>;
}

type Slot = { where: "local"; transfer: RunningTransfer } | { where: "worker"; worker: TransferWorker } | "opening";

export class TftpServer {
  private socket: Socket | undefined;
  private root: string;
  private readonly logger: Logger;
  private readonly cacheOptions: FileCacheOptions;
  /** Used for transfers run in this thread. */
  private readonly localCache: FileCache;
  private readonly workers: TransferWorker[] = [];
  readonly limits: TftpLimits;
  /** Keyed by `address:port`: a retransmitted RRQ must not start a second transfer. */
  private readonly transfers = new Map<string, Slot>();
  private readonly perClient = new Map<string, number>();
  private readonly ends = new Map<number, (end: TransferEnd) => void>();
  private nextId = 1;
  private readonly counters = {
    transfersStarted: 0,
    transfersCompleted: 0,
    transfersFailed: 0,
    transfersAborted: 0,
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
    this.cacheOptions = { ...DEFAULT_CACHE_OPTIONS, ...options.cache };
    this.localCache = new FileCache(this.cacheOptions);
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
    const cache = { hits: this.localCache.hits, misses: this.localCache.misses, bytes: this.localCache.cachedBytes };
    for (const w of this.workers) {
      cache.hits += w.cache.hits;
      cache.misses += w.cache.misses;
      cache.bytes += w.cache.bytes;
    }
    return { ...this.counters, transfersActive: this.transfers.size, cacheHits: cache.hits, cacheMisses: cache.misses, cacheBytes: cache.bytes };
  }

  async start(): Promise<void> {
    const count = this.options.workers ?? 0;
    try {
      for (let i = 0; i < count; i++) this.workers.push(await this.startWorker());
      this.socket = await this.bindRequestSocket(this.options.bindAddress, this.options.port);
    } catch (err) {
      await this.stopWorkers();
      throw err;
    }
  }

  /**
   * Refuses (throws) when `reconfigure` could not move the request port to `address:port`: binds a
   * probe socket there and closes it at once. A reload checks this before any part applies it.
   */
  async checkRebind(address: string, port: number): Promise<void> {
    if (address === this.options.bindAddress && port === this.options.port) return;
    await new Promise<void>((resolve, reject) => {
      const probe = createSocket({ type: "udp4" });
      probe.once("error", (err) => {
        probe.close();
        reject(new Error(`TFTP cannot move to ${address}:${port}: ${err.message}`, { cause: err }));
      });
      probe.bind({ address, port, exclusive: true }, () => probe.close(() => resolve()));
    });
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
    for (const slot of this.transfers.values()) {
      if (slot !== "opening" && slot.where === "local") slot.transfer.abort();
    }
    await this.stopWorkers();
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private startWorker(): Promise<TransferWorker> {
    // The cache bound is the server's: each worker holds its share of it.
    const share = Math.floor(this.cacheOptions.maxBytes / Math.max(1, this.options.workers ?? 1));
    const config: WorkerConfig = { limits: this.limits, cache: { ...this.cacheOptions, maxBytes: share } };
    let worker: Worker;
    if (import.meta.url.endsWith(".ts")) {
      // Running from source under tsx: a worker does not inherit the loader, so it registers tsx
      // itself before importing the TypeScript entry. Built code (dist/) loads the .js directly.
      const tsx = import.meta.resolve("tsx/esm/api");
      const entry = new URL("./worker-server.ts", import.meta.url).href;
      const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
      worker = new Worker(boot, { eval: true, workerData: config });
    } else {
      worker = new Worker(new URL("./worker-server.js", import.meta.url), { workerData: config });
    }
    const entry: TransferWorker = { worker, active: 0, cache: { hits: 0, misses: 0, bytes: 0 }, pending: new Set() };
    worker.on("message", (message: FromWorker) => {
      if (message.type !== "end") return;
      entry.cache = message.cache;
      entry.pending.delete(message.id);
      const onEnd = this.ends.get(message.id);
      this.ends.delete(message.id);
      onEnd?.(message.end);
    });
    const lost = (reason: string) => {
      // A dead worker must not leave its transfers counted as active forever, nor get new ones.
      const index = this.workers.indexOf(entry);
      if (index >= 0) this.workers.splice(index, 1);
      for (const id of entry.pending) {
        const onEnd = this.ends.get(id);
        this.ends.delete(id);
        onEnd?.({ outcome: { result: "failed", reason }, counters: { bytesSent: 0, datagramsSent: 0, retransmissions: 0, junkDropped: 0 }, ms: 0 });
      }
      entry.pending.clear();
    };
    worker.on("error", (err) => {
      this.logger.error({ err }, "tftp transfer worker failed; its transfers are lost, new ones run elsewhere");
      lost(`worker failed: ${err.message}`);
    });
    worker.on("exit", () => lost("worker exited"));
    return new Promise((resolve, reject) => {
      worker.once("message", () => resolve(entry));
      worker.once("error", reject);
    });
  }

  private async stopWorkers(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(
      workers.map(async ({ worker }) => {
        // Let the worker abort its transfers (each tells its client), then end it.
        const stopped = new Promise<void>((resolve) => {
          worker.on("message", (m: FromWorker) => m.type === "stopped" && resolve());
          setTimeout(resolve, 1000).unref();
        });
        worker.postMessage({ type: "stop" } satisfies ToWorker);
        await stopped;
        await worker.terminate();
      }),
    );
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
    let job: TransferJob;
    try {
      // RFC 1350 names are relative to the server's directory; an absolute name is refused
      // rather than taken as root-relative (PRODUCT.md §4: absolute paths are refused everywhere).
      const { path, stats } = await resolveInside(this.root, request.filename);
      job = {
        clientAddress: rinfo.address,
        clientPort: rinfo.port,
        bindAddress: this.bound?.address ?? this.options.bindAddress,
        request,
        file: { path, size: stats.size, dev: stats.dev, ino: stats.ino, mtimeMs: stats.mtimeMs },
      };
    } catch (err) {
      this.release(key, rinfo.address);
      const refusal = refusalFor(err);
      this.logger.info({ ...log, code: refusal.code, reason: (err as Error).message }, "tftp read refused");
      this.refuse(rinfo, refusal.code, refusal.message);
      return;
    }
    if (!this.socket) {
      this.release(key, rinfo.address); // stopped meanwhile
      return;
    }
    this.counters.transfersStarted++;
    const onEnd = (end: TransferEnd) => {
      this.release(key, rinfo.address);
      this.counters.bytesSent += end.counters.bytesSent;
      this.counters.datagramsSent += end.counters.datagramsSent;
      this.counters.retransmissions += end.counters.retransmissions;
      this.counters.junkDropped += end.counters.junkDropped;
      if (end.outcome.result === "completed") {
        this.counters.transfersCompleted++;
        this.logger.info({ ...log, bytes: end.size, blksize: end.blockSize, windowsize: end.windowSize, ms: end.ms }, "tftp transfer completed");
      } else if (end.outcome.result === "aborted") {
        this.counters.transfersAborted++;
        this.logger.info({ ...log, reason: end.outcome.reason, ms: end.ms }, "tftp transfer ended by the client");
      } else {
        this.counters.transfersFailed++;
        this.logger.warn({ ...log, reason: end.outcome.reason, ms: end.ms }, "tftp transfer failed");
      }
    };
    const worker = this.leastBusyWorker();
    if (worker) {
      const id = this.nextId++;
      worker.active++;
      this.ends.set(id, (end) => {
        worker.active--;
        onEnd(end);
      });
      worker.pending.add(id);
      this.transfers.set(key, { where: "worker", worker });
      worker.worker.postMessage({ type: "transfer", id, job } satisfies ToWorker);
    } else {
      this.transfers.set(key, { where: "local", transfer: runTransfer(job, this.localCache, this.limits, onEnd) });
    }
  }

  private leastBusyWorker(): TransferWorker | undefined {
    let best: TransferWorker | undefined;
    for (const w of this.workers) if (!best || w.active < best.active) best = w;
    return best;
  }
}

/** `<stateDir>/ipxe`, the directory TFTP serves (docs/LAYOUT.md). */
export function tftpRoot(stateDir: string): string {
  return bootloaderDir(stateDir);
}
