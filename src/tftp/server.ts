import type { BootObserver } from "../contracts/boot-observation.js";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { Worker } from "node:worker_threads";
import { LogThrottle, type Logger } from "../log.js";
import { NotFoundError, PathEscapeError } from "../errors.js";
import { resolveInside } from "../files/safe-path.js";
import { RequestRateLimit, TransferBudget } from "./admission.js";
import { DEFAULT_CACHE_OPTIONS, FileCache, type FileCacheOptions } from "./file-source.js";
import { decodePacket, encodePacket, ErrorCode, Opcode, type RequestPacket } from "./packet.js";
import {
  DEFAULT_TFTP_LIMITS,
  runTransfer,
  type RunningTransfer,
  type TftpLimits,
  type TransferEnd,
  type TransferJob,
} from "./transfer-server.js";
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
  /** Told of every read that ended or was refused (the boot timeline); called on this thread. */
  observer?: BootObserver;
  /** Names answered from elsewhere than `root` (asked first, for every read request). */
  sources?: TftpSourceLookup;
}

/**
 * Where a name the root does not hold comes from: bytes made for this one request (a per-machine
 * boot config), or a file resolved inside another root (the images directory).
 */
export type TftpSource = { kind: "bytes"; bytes: Buffer } | { kind: "file"; root: string; name: string };
export type TftpSourceLookup = (filename: string, client: string) => Promise<TftpSource | undefined>;

/** Counters for metrics; plain numbers, read with `stats()`. */
export interface TftpStats {
  transfersStarted: number;
  transfersCompleted: number;
  transfersFailed: number;
  /** Ended by the client with an ERROR (PXE ROMs probing `tsize` do this on every boot). */
  transfersAborted: number;
  transfersActive: number;
  requestsRefused: number;
  /**
   * Requests dropped without an answer because their source address was over its request rate
   * (admission.ts) or already had its share of transfers not yet acknowledged.
   */
  requestsRateLimitedClient: number;
  /** Requests dropped without an answer because the whole server was over its request rate. */
  requestsRateLimitedServer: number;
  /** Transfers never acknowledged, ended early to make room for newer requests (admission.ts). */
  transfersEvicted: number;
  junkDropped: number;
  bytesSent: number;
  datagramsSent: number;
  retransmissions: number;
  cacheHits: number;
  cacheMisses: number;
  cacheBytes: number;
}

/** At most one "tftp … refused" line per kind (and error code) per this long. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** The limits of port 69 that a reload can change (TransferBudget, RequestRateLimit). */
const ADMISSION_KEYS = [
  "maxTransfers",
  "maxTransfersPerClient",
  "maxUnverifiedTransfers",
  "maxUnverifiedPerClient",
  "requestsPerSecondPerClient",
  "requestBurstPerClient",
  "requestsPerSecond",
  "requestBurst",
] as const satisfies readonly (keyof TftpLimits)[];
export type AdmissionLimits = Partial<Pick<TftpLimits, (typeof ADMISSION_KEYS)[number]>>;

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

/** One admitted transfer, from its request to its end. */
interface Slot {
  /** Its id in the budget and in messages to its worker. */
  id: number;
  key: string;
  address: string;
  /** Where it runs; undefined while its file is being resolved (it is not in the budget yet). */
  running: { where: "local"; transfer: RunningTransfer } | { where: "worker"; worker: TransferWorker } | undefined;
  /** The client acknowledged something (its failure is then worth a warning). */
  verified: boolean;
  /** Its last block went out: only the final ACK is missing (onRequest). */
  lastBlockSent: boolean;
}

export class TftpServer {
  private socket: Socket | undefined;
  private root: string;
  private readonly logger: Logger;
  /**
   * Refused requests are counted in /metrics; the log gets one line per kind per interval with the
   * number held back. Each refusal costs the sender one datagram and its address may be forged, so
   * a line each would make the log the flood's amplifier (issue 10; the fuzz campaign sent 10^6).
   */
  private readonly refusalLog = new LogThrottle(REFUSAL_LOG_INTERVAL_MS);
  private readonly cacheOptions: FileCacheOptions;
  /** Used for transfers run in this thread. */
  private readonly localCache: FileCache;
  private readonly workers: TransferWorker[] = [];
  readonly limits: TftpLimits;
  /** Keyed by `address:port`: a retransmitted RRQ must not start a second transfer. */
  private readonly transfers = new Map<string, Slot>();
  /** Every transfer admitted into the budget, by id; evicted ones until they end. */
  private readonly slots = new Map<number, Slot>();
  private readonly budget: TransferBudget;
  private readonly rateLimit: RequestRateLimit;
  private readonly ends = new Map<number, (end: TransferEnd) => void>();
  private nextId = 1;
  private readonly counters = {
    transfersStarted: 0,
    transfersCompleted: 0,
    transfersFailed: 0,
    transfersAborted: 0,
    transfersEvicted: 0,
    requestsRefused: 0,
    requestsRateLimitedClient: 0,
    requestsRateLimitedServer: 0,
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
    this.budget = new TransferBudget(this.limits);
    this.rateLimit = new RequestRateLimit(this.limits, performance.now());
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
    return {
      ...this.counters,
      transfersActive: this.slots.size,
      cacheHits: cache.hits,
      cacheMisses: cache.misses,
      cacheBytes: cache.bytes,
    };
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

  /**
   * Point new requests at another root, move the request port if it changed, and take new
   * admission limits (the budget and rates of port 69; transfer timers and negotiation limits are
   * the workers' and stay until restart). A limit left out goes back to its default.
   */
  async reconfigure(root: string, bindAddress: string, port: number, admission: AdmissionLimits = {}): Promise<void> {
    if (bindAddress !== this.options.bindAddress || port !== this.options.port) {
      const next = await this.bindRequestSocket(bindAddress, port);
      const old = this.socket;
      this.socket = next;
      if (old) await new Promise<void>((resolve) => old.close(() => resolve()));
    }
    this.root = root;
    this.options = { ...this.options, root, bindAddress, port };
    // In place: the budget and the rate limit read these on every request.
    for (const key of ADMISSION_KEYS) this.limits[key] = admission[key] ?? DEFAULT_TFTP_LIMITS[key];
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    this.bound = undefined;
    for (const slot of this.slots.values()) {
      if (slot.running?.where === "local") slot.running.transfer.abort();
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
      if (message.type === "verified") this.verified(message.id);
      if (message.type === "last-block-sent") this.lastBlockSent(message.id);
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
        onEnd?.({
          outcome: { result: "failed", reason },
          counters: { bytesSent: 0, datagramsSent: 0, retransmissions: 0, junkDropped: 0 },
          ms: 0,
        });
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

  /** One line per kind (and code) per interval; `heldBack`: the refusals not logged since the last. */
  private logRefusal(fields: Record<string, unknown>, message: string, code?: number): void {
    const heldBack = this.refusalLog.admit(`${message}:${code ?? ""}`, performance.now());
    if (heldBack !== undefined) this.logger.info({ ...fields, heldBack }, message);
  }

  /**
   * Whether a request from `address` may be answered at all (admission.ts); a request over the
   * rate is dropped without an answer, so a flood costs the server no sends.
   */

  private withinRate(address: string): boolean {
    const verdict = this.rateLimit.take(address, performance.now());
    if (verdict === "ok") return true;
    if (verdict === "client") this.counters.requestsRateLimitedClient++;
    else this.counters.requestsRateLimitedServer++;
    return false;
  }

  private onRequest(msg: Buffer, rinfo: RemoteInfo): void {
    let request: RequestPacket;
    try {
      const packet = decodePacket(msg);
      if (packet.opcode === Opcode.WriteRequest) {
        if (!this.withinRate(rinfo.address)) return;
        this.logRefusal(
          { client: rinfo.address, file: packet.filename },
          "tftp write request refused (read-only server)",
        );
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
    const existing = this.transfers.get(key);
    if (existing) {
      // The client repeated its RRQ; the transfer already answers. Checked before the rate, so a
      // client's own retransmissions do not spend its tokens. A late client's repeat can arrive
      // after its first ACK (it sent both in one turn; the ACK reaches a worker, the RRQ this
      // thread), so being acknowledged is not enough to call a request new.
      if (!existing.lastBlockSent) return;
      // Once the whole file went out, a request from the same port is a new one: the client
      // finished (RFC 1350 §6 lets it leave after its final ACK; when that ACK is lost the old
      // transfer retries its last block for half a minute) and its next transfer reuses the port.
      // Taken for a repeat, the new request went unanswered and the old transfer's DATA reached
      // it (the boot storm lost ~1.5% of its machines so: bench/storm/README.md).
      this.supersede(existing);
    }
    if (!this.withinRate(rinfo.address)) return;
    if (request.mode === "mail") {
      // RFC 1350 mail mode delivers to a user; it has no meaning for a read.
      this.refuse(rinfo, ErrorCode.IllegalOperation, "mail mode is not supported");
      return;
    }
    const slot: Slot = {
      id: this.nextId++,
      key,
      address: rinfo.address,
      running: undefined,
      verified: false,
      lastBlockSent: false,
    };
    this.transfers.set(key, slot);
    void this.open(slot, request, rinfo);
  }

  /**
   * Take a place in the budget for a request whose file was found (a refused name never evicts a
   * transfer), or refuse it: busy and over-the-client-limit with an ERROR, over the client's share
   * of unacknowledged transfers silently (they are acknowledged within a round trip, and its RRQ
   * is repeated).
   */
  private admit(slot: Slot, rinfo: RemoteInfo): boolean {
    const admission = this.budget.admit(slot.id, slot.address);
    if (!admission.admitted) {
      if (admission.reason === "busy") this.refuse(rinfo, ErrorCode.NotDefined, "server busy, try again");
      else if (admission.reason === "client-limit")
        this.refuse(rinfo, ErrorCode.NotDefined, "too many transfers from this address");
      else this.counters.requestsRateLimitedClient++;
      return false;
    }
    this.slots.set(slot.id, slot);
    if (admission.evict !== undefined) this.evict(admission.evict);
    return true;
  }

  /** The client of transfer `id` acknowledged: it leaves the unverified budget. */
  private verified(id: number): void {
    this.budget.verify(id);
    const slot = this.slots.get(id);
    if (slot) slot.verified = true;
  }

  /**
   * Make room for a newer request: the budget already let go of `id`; its transfer stops unless its
   * client acknowledged meanwhile (a worker may have seen the ACK before this message).
   */
  private evict(id: number): void {
    const slot = this.slots.get(id);
    if (!slot) return;
    this.counters.transfersEvicted++;
    if (this.transfers.get(slot.key) === slot) this.transfers.delete(slot.key);
    if (slot.running?.where === "local") slot.running.transfer.evict();
    else if (slot.running?.where === "worker")
      slot.running.worker.worker.postMessage({ type: "evict", id } satisfies ToWorker);
  }

  private lastBlockSent(id: number): void {
    const slot = this.slots.get(id);
    if (slot) slot.lastBlockSent = true;
  }

  /** End a transfer its client started over from the same port (onRequest); its end comes as usual. */
  private supersede(slot: Slot): void {
    this.transfers.delete(slot.key);
    if (slot.running?.where === "local") slot.running.transfer.supersede();
    else if (slot.running?.where === "worker")
      slot.running.worker.worker.postMessage({ type: "supersede", id: slot.id } satisfies ToWorker);
  }

  private release(slot: Slot): void {
    this.budget.release(slot.id);
    this.slots.delete(slot.id);
    if (this.transfers.get(slot.key) === slot) this.transfers.delete(slot.key);
  }

  private async open(slot: Slot, request: RequestPacket, rinfo: RemoteInfo): Promise<void> {
    const log = { client: rinfo.address, port: rinfo.port, file: request.filename };
    let job: TransferJob;
    try {
      // RFC 1350 names are relative to the server's directory. A leading `/` is taken as the root,
      // as `tftpd-hpa --secure` does: firmware and dhcpd.conf files migrated from it ask for
      // `/undionly.kpxe`. Nothing outside the root is reachable either way (resolveInside).
      const source = await this.options.sources?.(request.filename, rinfo.address);
      const common = {
        clientAddress: rinfo.address,
        clientPort: rinfo.port,
        bindAddress: this.bound?.address ?? this.options.bindAddress,
        request,
      };
      if (source?.kind === "bytes") {
        // Made for this client alone: never cached, so the file identity only has to be unique.
        const size = source.bytes.length;
        job = {
          ...common,
          file: { path: request.filename, size, dev: 0, ino: 0, mtimeMs: 0 },
          generated: source.bytes,
        };
      } else {
        const [root, name] = source ? [source.root, source.name] : [this.root, request.filename];
        const { path, stats } = await resolveInside(root, name, { allowLeadingSlash: true });
        job = { ...common, file: { path, size: stats.size, dev: stats.dev, ino: stats.ino, mtimeMs: stats.mtimeMs } };
      }
    } catch (err) {
      this.release(slot);
      const refusal = refusalFor(err);
      this.logRefusal(
        { ...log, code: refusal.code, reason: (err as Error).message },
        "tftp read refused",
        refusal.code,
      );
      this.refuse(rinfo, refusal.code, refusal.message);
      this.options.observer?.({
        source: "tftp",
        at: Date.now(),
        client: rinfo.address,
        file: request.filename,
        outcome: "refused",
        bytes: 0,
        ms: 0,
        retransmissions: 0,
        reason: refusal.message,
      });
      return;
    }
    if (!this.socket) {
      this.release(slot); // stopped meanwhile
      return;
    }
    if (!this.admit(slot, rinfo)) {
      this.release(slot);
      return;
    }
    this.counters.transfersStarted++;
    const onEnd = (end: TransferEnd) => {
      this.release(slot);
      this.counters.bytesSent += end.counters.bytesSent;
      this.counters.datagramsSent += end.counters.datagramsSent;
      this.counters.retransmissions += end.counters.retransmissions;
      this.counters.junkDropped += end.counters.junkDropped;
      this.options.observer?.({
        source: "tftp",
        at: Date.now(),
        client: rinfo.address,
        file: request.filename,
        outcome: end.outcome.result,
        bytes: end.counters.bytesSent,
        ...(end.size !== undefined ? { size: end.size } : {}),
        ms: Math.round(end.ms),
        retransmissions: end.counters.retransmissions,
        ...(end.outcome.result !== "completed" ? { reason: end.outcome.reason } : {}),
      });
      if (end.outcome.result === "completed") {
        this.counters.transfersCompleted++;
        this.logger.info(
          { ...log, bytes: end.size, blksize: end.blockSize, windowsize: end.windowSize, ms: end.ms },
          "tftp transfer completed",
        );
      } else if (end.outcome.result === "aborted") {
        this.counters.transfersAborted++;
        this.logger.info({ ...log, reason: end.outcome.reason, ms: end.ms }, "tftp transfer ended by the client");
      } else {
        this.counters.transfersFailed++;
        // Never acknowledged: maybe a forged address, maybe a flood of them; counted, not a warning
        // per transfer (the log would be the attacker's amplifier).
        const level = slot.verified ? "warn" : "debug";
        this.logger[level]({ ...log, reason: end.outcome.reason, ms: end.ms }, "tftp transfer failed");
      }
    };
    const worker = this.leastBusyWorker();
    const id = slot.id;
    if (worker) {
      worker.active++;
      this.ends.set(id, (end) => {
        worker.active--;
        onEnd(end);
      });
      worker.pending.add(id);
      slot.running = { where: "worker", worker };
      worker.worker.postMessage({ type: "transfer", id, job } satisfies ToWorker);
    } else {
      const transfer = runTransfer(job, this.localCache, this.limits, {
        onVerified: () => this.verified(id),
        onLastBlockSent: () => this.lastBlockSent(id),
        onEnd,
      });
      slot.running = { where: "local", transfer };
    }
  }

  private leastBusyWorker(): TransferWorker | undefined {
    let best: TransferWorker | undefined;
    for (const w of this.workers) if (!best || w.active < best.active) best = w;
    return best;
  }
}
