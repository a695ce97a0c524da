import type { FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";

/**
 * Copy a byte range of an open file to an HTTP response, fast and in bounded memory whatever the
 * client's speed.
 *
 * Why not `createReadStream().pipe(res)`: a read stream allocates a fresh buffer for every chunk,
 * so 50 machines pulling a 500 MB image churn gigabytes of short-lived external memory through
 * the GC (latency spikes, RSS swings).
 *
 * Why one chunk per download and no read-ahead of ours: the kernel's socket send buffer
 * (autotuned up to net.ipv4.tcp_wmem's maximum, 4 MiB by default) already is the read-ahead. A
 * write whose bytes fit there completes at once, and the next pread refills the chunk long before
 * a fast client drains the socket; a write that does not fit waits for the client. So the next
 * chunk is read only once the kernel took all of the previous one, and a client that stops
 * reading holds exactly one chunk of ours (256 KiB), not the two to four 512 KiB chunks that
 * unconditional read-ahead held (60 stalled readers: 70 MiB of RSS, 1.2 MiB each). A variant
 * that read ahead into a second chunk while the client kept up was no faster on loopback.
 *
 * Buffers come from a pool shared by all downloads with a global budget. Past the budget a download
 * goes on with a small buffer of its own rather than waiting: memory stays bounded (budget plus one
 * small buffer per connection, and connections are capped) and a crowd of stalled readers can make
 * other downloads slower, never stop them.
 */

/** Big enough that per-chunk costs (a pread through the thread pool, a write, a promise) stay small. */
export const CHUNK_BYTES = 256 * 1024;
/** What a download gets once the pooled chunks are all in use. */
export const SMALL_CHUNK_BYTES = 16 * 1024;
/** Pooled chunks in use at once, all downloads together (64 MiB). */
export const POOL_CHUNKS = 256;
/** Idle chunks kept for the next downloads; beyond this they go back to the allocator. */
const IDLE_LIMIT = 32;

const idle: Buffer[] = [];
let pooledInUse = 0;

/** A download's buffer and whether it counts against the pool's budget. */
interface Lease {
  buffer: Buffer;
  pooled: boolean;
}

function takeBuffer(): Lease {
  if (pooledInUse < POOL_CHUNKS) {
    pooledInUse++;
    // allocUnsafeSlow: a dedicated allocation, not a slice of Node's shared 8 KiB slab.
    return { buffer: idle.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES), pooled: true };
  }
  return { buffer: Buffer.allocUnsafeSlow(SMALL_CHUNK_BYTES), pooled: false };
}

/** `reusable`: no write may still be using the buffer (else it is left to the GC). */
function returnBuffer(lease: Lease, reusable: boolean): void {
  if (!lease.pooled) return;
  pooledInUse--;
  if (reusable && idle.length < IDLE_LIMIT) idle.push(lease.buffer);
}

/** Pooled chunks in use and idle, for tests and metrics. */
export function bufferPoolStats(): { inUse: number; idle: number; budget: number } {
  return { inUse: pooledInUse, idle: idle.length, budget: POOL_CHUNKS };
}

/** Resolves when the kernel has taken all of `chunk` (so its buffer may be reused). */
function writeChunk(response: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (response.destroyed) {
      reject(new Error("client went away"));
      return;
    }
    response.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Stream bytes `start..end` (inclusive) of `handle` to `response`, then end it. Rejects when the
 * client goes away or the file shrinks under us; the response is destroyed then, so the client
 * sees a short body against its Content-Length rather than a silently truncated file. Always
 * closes `handle`.
 */
export async function streamFileRange(handle: FileHandle, response: ServerResponse, start: number, end: number): Promise<void> {
  const lease = takeBuffer();
  let writing: Promise<void> | undefined;
  // A write callback is not guaranteed to run once the connection is torn down; 'close' is.
  let onClose: (() => void) | undefined;
  const gone = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error("client went away"));
    response.once("close", onClose);
  });
  gone.catch(() => undefined);
  try {
    let position = start;
    while (position <= end) {
      const wanted = Math.min(lease.buffer.length, end - position + 1);
      const { bytesRead } = await handle.read(lease.buffer, 0, wanted, position);
      if (bytesRead === 0) throw new Error(`file ended at byte ${position}, before ${end + 1}`);
      position += bytesRead;
      writing = writeChunk(response, bytesRead === lease.buffer.length ? lease.buffer : lease.buffer.subarray(0, bytesRead));
      // Observed by the race below, or never when the client is gone first: no unhandled rejection.
      writing.catch(() => undefined);
      // The kernel must hold all of it before the buffer is refilled: this wait is the backpressure.
      await Promise.race([writing, gone]);
      writing = undefined;
    }
    response.end();
    returnBuffer(lease, true);
  } catch (error) {
    // A write still pending may be holding the buffer: it goes to the GC, not back to the pool.
    returnBuffer(lease, writing === undefined);
    response.destroy();
    throw error;
  } finally {
    response.off("close", onClose!);
    await handle.close().catch(() => undefined);
  }
}
