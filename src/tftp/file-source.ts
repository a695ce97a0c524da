import { open, readFile, type FileHandle } from "node:fs/promises";
import type { Stats } from "node:fs";
import { toNetascii } from "./netascii.js";
import { writeDataHeader } from "./packet.js";

/**
 * Where a transfer's bytes come from. Popular small files (the bootloaders every machine fetches on
 * every boot) are held once in a bounded cache shared by all transfers; larger files are read from
 * disk a chunk at a time per transfer, so memory stays bounded by `transfers × chunk size`.
 */

export interface FileContent {
  readonly size: number;
  /** The whole content when it is in memory (cached or converted); DATA payloads are slices of it. */
  readonly buffer: Buffer | undefined;
  /**
   * The whole file as ready-made DATA datagrams for one block size, shared by every transfer that
   * uses that size (block `n`'s header is the same for all of them): datagram `n` starts at
   * `(n - 1) * (blockSize + 4)`. Undefined for streamed files.
   */
  framed(blockSize: number): Buffer | undefined;
  /** Bytes `[offset, offset + length)`; only used when `buffer` is undefined. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
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

function versionOf(stats: Stats): string {
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

function inMemory(buffer: Buffer, framed: (blockSize: number) => Buffer | undefined = () => undefined): FileContent {
  return {
    size: buffer.length,
    buffer,
    framed,
    read: async (offset, length) => buffer.subarray(offset, offset + length),
    close: async () => {},
  };
}

/**
 * Reads a large file in chunks; sequential transfers hit the current chunk almost always. Each refill
 * gets a fresh buffer: payloads handed to the socket may still sit in its send queue, and the old
 * chunk must stay intact until they have left (the garbage collector frees it after).
 */
class ChunkedFile implements FileContent {
  readonly buffer = undefined;
  framed(): undefined {
    return undefined;
  }
  private chunk: Buffer = Buffer.alloc(0);
  private chunkStart = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly chunkBytes: number,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < this.chunkStart || offset + length > this.chunkStart + this.chunk.length) {
      const want = Math.max(length, Math.min(this.chunkBytes, this.size - offset));
      const into = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.handle.read(into, 0, want, offset);
      this.chunk = into.subarray(0, bytesRead);
      this.chunkStart = offset;
    }
    const start = offset - this.chunkStart;
    return this.chunk.subarray(start, Math.min(start + length, this.chunk.length));
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
  async open(path: string, stats: Stats, netascii: boolean): Promise<FileContent> {
    if (netascii) {
      if (stats.size > this.options.maxNetasciiBytes) throw new RangeError(`netascii reads are limited to ${this.options.maxNetasciiBytes} bytes`);
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
    return inMemory(buffer, (blockSize) => {
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
