import { open, readFile, type FileHandle } from "node:fs/promises";
import { toNetascii } from "./netascii.js";
import { writeDataHeader } from "./packet.js";

/**
 * Where a transfer's bytes come from. Popular small files (the bootloaders every machine fetches on
 * every boot) are held once in a bounded cache shared by all transfers; larger files are read from
 * disk a chunk at a time per transfer, so memory stays bounded by `transfers × chunk size`.
 */

/**
 * A file as DATA datagrams. Block `n` (1-based, absolute) is sent as its 4-byte header and payload;
 * block headers do not depend on the transfer, only on the block size, so the same bytes serve
 * every client. Consecutive blocks lie end to end, `blockSize + 4` bytes apart, so a window is one
 * buffer the socket sends in one call.
 */
export interface FileContent {
  readonly size: number;
  /**
   * The datagrams of blocks `first`..`last` that are in memory now, from `first` on, or undefined
   * when `first` is not (then `load` it).
   */
  peek(first: number, last: number, blockSize: number): DatagramRun | undefined;
  /** Bring `block` (and the ones after it) into memory for `peek`. */
  load(block: number, blockSize: number): Promise<void>;
  close(): Promise<void>;
}

/** Datagrams laid end to end: each `blockSize + 4` bytes but the file's last, which is shorter. */
export interface DatagramRun {
  bytes: Buffer;
  blocks: number;
}

/** Bytes of DATA block `block` of a file of `size` bytes. */
function payloadLength(size: number, block: number, blockSize: number): number {
  return Math.max(0, Math.min(blockSize, size - (block - 1) * blockSize));
}

/** The last block of a file: the one shorter than `blockSize` (empty when the size divides). */
function lastBlockOf(size: number, blockSize: number): number {
  return Math.floor(size / blockSize) + 1;
}

/** Blocks `first`..`last` out of `framed`, which starts with block `framedFirst`. */
function runOf(
  framed: Buffer,
  framedFirst: number,
  first: number,
  last: number,
  size: number,
  blockSize: number,
): DatagramRun {
  const slot = blockSize + 4;
  const start = (first - framedFirst) * slot;
  const end = (last - framedFirst) * slot + 4 + payloadLength(size, last, blockSize);
  return { bytes: framed.subarray(start, end), blocks: last - first + 1 };
}

export interface FileCacheOptions {
  /** Total bytes held. */
  maxBytes: number;
  /** Files larger than this are never cached; they are streamed. */
  maxFileBytes: number;
  /** Read-ahead per streamed transfer. */
  chunkBytes: number;
  /** Netascii is converted in memory; a larger file is refused rather than held. */
  maxNetasciiBytes: number;
}

export const DEFAULT_CACHE_OPTIONS: FileCacheOptions = {
  maxBytes: 64 * 1024 * 1024,
  maxFileBytes: 8 * 1024 * 1024,
  chunkBytes: 256 * 1024,
  maxNetasciiBytes: 8 * 1024 * 1024,
};

interface CacheEntry {
  /** Identity of the file version the bytes came from; a replaced or edited file misses. */
  version: string;
  buffer: Buffer;
}

/** What identifies one version of a file (fs.Stats has these). */
export interface FileIdentity {
  size: number;
  dev: number;
  ino: number;
  mtimeMs: number;
}

function versionOf(stats: FileIdentity): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
}

/**
 * Lay a file out as consecutive DATA datagrams: `[0 3 n_hi n_lo][payload]` per block, the last one
 * short (possibly empty), so that sending block `n` is one slice and no per-packet copy or header.
 */
export function frameBlocks(buffer: Buffer, blockSize: number): Buffer {
  const blocks = Math.floor(buffer.length / blockSize) + 1;
  const lastLength = buffer.length - (blocks - 1) * blockSize;
  const framed = Buffer.allocUnsafe((blocks - 1) * (blockSize + 4) + 4 + lastLength);
  for (let n = 1, out = 0, offset = 0; n <= blocks; n++) {
    const length = n < blocks ? blockSize : lastLength;
    writeDataHeader(framed, out, n & 0xffff);
    buffer.copy(framed, out + 4, offset, offset + length);
    out += blockSize + 4;
    offset += length;
  }
  return framed;
}

/** A cached file: the framed layout per block size comes from the shared cache. */
function inMemory(size: number, framedFor: (blockSize: number) => Buffer): FileContent {
  let framed: Buffer | undefined;
  let framedSize = 0;
  return {
    size,
    peek(first, last, blockSize) {
      if (framedSize !== blockSize) {
        framed = framedFor(blockSize);
        framedSize = blockSize;
      }
      return runOf(framed!, 1, first, Math.min(last, lastBlockOf(size, blockSize)), size, blockSize);
    },
    load: async () => {},
    close: async () => {},
  };
}

/**
 * Bytes made for one request (a per-machine config), never cached. A `Uint8Array` because a job
 * crosses to a worker thread by structured clone, which turns a Buffer into one.
 */
export function generatedContent(bytes: Uint8Array, netascii: boolean): FileContent {
  const plain = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = netascii ? toNetascii(plain) : plain;
  return inMemory(data.length, (blockSize) => frameBlocks(data, blockSize));
}

interface FramedChunk {
  first: number;
  count: number;
  blockSize: number;
  framed: Buffer;
}

/**
 * A large file read from disk a chunk of blocks at a time, straight into the framed layout with one
 * `readv` (one iovec per block payload, headers written around them), and the next chunk read ahead
 * while the current one is sent. Each chunk is a fresh buffer: datagrams handed to the socket may
 * sit in its send queue, and the chunk they point into must stay intact until they leave.
 */
class ChunkedFile implements FileContent {
  private current: FramedChunk | undefined;
  private ahead: { first: number; blockSize: number; chunk: Promise<FramedChunk> } | undefined;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly chunkBytes: number,
  ) {}

  peek(first: number, last: number, blockSize: number): DatagramRun | undefined {
    const c = this.current;
    if (!c || c.blockSize !== blockSize || first < c.first || first >= c.first + c.count) return undefined;
    // Past half of the chunk, start reading the next one so the sender does not wait for the disk.
    if ((first - c.first) * 2 >= c.count && !this.ahead && c.first + c.count <= lastBlockOf(this.size, blockSize))
      this.readAhead(c.first + c.count, blockSize);
    return runOf(c.framed, c.first, first, Math.min(last, c.first + c.count - 1), this.size, blockSize);
  }

  async load(block: number, blockSize: number): Promise<void> {
    if (this.ahead && this.ahead.first === block && this.ahead.blockSize === blockSize) {
      const pending = this.ahead.chunk;
      this.ahead = undefined;
      this.current = await pending;
      return;
    }
    this.current = await this.readChunk(block, blockSize);
  }

  private readAhead(first: number, blockSize: number): void {
    const chunk = this.readChunk(first, blockSize);
    chunk.catch(() => {}); // surfaced by load() if it is ever awaited
    this.ahead = { first, blockSize, chunk };
  }

  private async readChunk(first: number, blockSize: number): Promise<FramedChunk> {
    // IOV_MAX is 1024 on Linux: one iovec per block.
    const perChunk = Math.max(1, Math.min(1024, Math.floor(this.chunkBytes / blockSize)));
    const count = Math.min(perChunk, lastBlockOf(this.size, blockSize) - first + 1);
    const slot = blockSize + 4;
    const framed = Buffer.allocUnsafe(count * slot);
    const iovecs: Buffer[] = [];
    let expected = 0;
    for (let i = 0; i < count; i++) {
      writeDataHeader(framed, i * slot, (first + i) & 0xffff);
      const length = payloadLength(this.size, first + i, blockSize);
      if (length > 0) iovecs.push(framed.subarray(i * slot + 4, i * slot + 4 + length));
      expected += length;
    }
    if (expected > 0) {
      const { bytesRead } = await this.handle.readv(iovecs, (first - 1) * blockSize);
      if (bytesRead !== expected)
        throw new Error(`file changed while being served (read ${bytesRead} of ${expected} bytes)`);
    }
    return { first, count, blockSize, framed };
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export class FileCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly loading = new Map<string, Promise<Buffer>>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly options: FileCacheOptions = DEFAULT_CACHE_OPTIONS) {}

  get cachedBytes(): number {
    return this.bytes;
  }

  /**
   * Open `path` (already checked by resolveInside) for one transfer. Throws a RangeError for a
   * netascii read of a file too large to convert in memory.
   */
  async open(path: string, stats: FileIdentity, netascii: boolean): Promise<FileContent> {
    if (netascii) {
      if (stats.size > this.options.maxNetasciiBytes)
        throw new RangeError(`netascii reads are limited to ${this.options.maxNetasciiBytes} bytes`);
      return this.cachedContent(`netascii:${path}`, versionOf(stats), async () => toNetascii(await readFile(path)));
    }
    if (stats.size <= this.options.maxFileBytes) {
      return this.cachedContent(`octet:${path}`, versionOf(stats), () => readFile(path));
    }
    const handle = await open(path, "r");
    return new ChunkedFile(handle, stats.size, this.options.chunkBytes);
  }

  private async cachedContent(key: string, version: string, read: () => Promise<Buffer>): Promise<FileContent> {
    const buffer = await this.load(key, version, read);
    // The framed layouts live in the same LRU (and count against the same bound) as the files.
    return inMemory(buffer.length, (blockSize) => {
      const framedKey = `${key}#${blockSize}`;
      const entry = this.entries.get(framedKey);
      if (entry && entry.version === version) {
        this.entries.delete(framedKey);
        this.entries.set(framedKey, entry);
        return entry.buffer;
      }
      const framed = frameBlocks(buffer, blockSize);
      this.insert(framedKey, { version, buffer: framed });
      return framed;
    });
  }

  private async load(key: string, version: string, read: () => Promise<Buffer>): Promise<Buffer> {
    const entry = this.entries.get(key);
    if (entry && entry.version === version) {
      // Re-insert so Map order is least-recently-used first.
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.hits++;
      return entry.buffer;
    }
    const loadKey = `${key}@${version}`;
    const pending = this.loading.get(loadKey);
    if (pending) return pending;
    this.misses++;
    // A boot storm asks for the same bootloader hundreds of times at once: read it once.
    const promise = read().finally(() => this.loading.delete(loadKey));
    this.loading.set(loadKey, promise);
    const buffer = await promise;
    this.insert(key, { version, buffer });
    return buffer;
  }

  private insert(key: string, entry: CacheEntry): void {
    const old = this.entries.get(key);
    if (old) {
      this.bytes -= old.buffer.length;
      this.entries.delete(key);
    }
    if (entry.buffer.length > this.options.maxBytes) return;
    for (const [k, e] of this.entries) {
      if (this.bytes + entry.buffer.length <= this.options.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.buffer.length;
    }
    this.entries.set(key, entry);
    this.bytes += entry.buffer.length;
  }
}
