import type { FileHandle } from "node:fs/promises";
import type { ServerResponse } from "node:http";

/**
 * Copy a byte range of an open file to an HTTP response, fast and in bounded memory.
 *
 * Why not `createReadStream().pipe(res)`: a read stream allocates a fresh buffer for every chunk,
 * so 50 machines pulling a 500 MB image churn gigabytes of short-lived external memory through
 * the GC (latency spikes, RSS swings), and it reads one chunk ahead at most. Here each download
 * owns CHUNKS_IN_FLIGHT reusable buffers from a shared pool: while the socket drains one, the
 * thread pool fills the next (pread), and a buffer is refilled only after the kernel took all of
 * it (the write callback). Memory per download is fixed; nothing is ever read whole.
 */

/** Big enough that per-chunk costs (a pread, a write, a promise) vanish next to the copy. */
export const CHUNK_BYTES = 512 * 1024;
/**
 * Reads ahead of the socket. Four keep both the page-cache copy and the socket busy for a lone
 * download; with many at once the other downloads fill those gaps, so each gets two and memory
 * stays at about 1 MiB per download however many machines boot together.
 */
export const CHUNKS_IN_FLIGHT = 4;
const CHUNKS_IN_FLIGHT_BUSY = 2;
const BUSY_DOWNLOADS = 8;
let activeDownloads = 0;
/** Idle buffers kept for the next downloads; beyond this they go back to the allocator. */
const POOL_LIMIT = 64;

const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  // allocUnsafeSlow: a dedicated allocation, not a slice of Node's shared 8 KiB slab.
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
}

function returnBuffer(buffer: Buffer): void {
  if (pool.length < POOL_LIMIT) pool.push(buffer);
}

/** Resolves when the kernel has taken all of `chunk` (so its buffer may be reused). */
function writeChunk(response: ServerResponse, chunk: Buffer): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    if (response.destroyed) {
      reject(new Error("client went away"));
      return;
    }
    response.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
  // Observed later (or never, when the loop already stopped); never an unhandled rejection.
  written.catch(() => undefined);
  return written;
}

/**
 * Stream bytes `start..end` (inclusive) of `handle` to `response`, then end it. Rejects when the
 * client goes away or the file shrinks under us; the response is destroyed then, so the client
 * sees a short body against its Content-Length rather than a silently truncated file. Always
 * closes `handle`.
 */
export async function streamFileRange(handle: FileHandle, response: ServerResponse, start: number, end: number): Promise<void> {
  const buffers: Buffer[] = [];
  const writes: (Promise<void> | undefined)[] = [];
  activeDownloads++;
  const inFlight = activeDownloads > BUSY_DOWNLOADS ? CHUNKS_IN_FLIGHT_BUSY : CHUNKS_IN_FLIGHT;
  for (let i = 0; i < inFlight; i++) {
    buffers.push(takeBuffer());
    writes.push(undefined);
  }
  // A write callback is not guaranteed to run once the connection is torn down; 'close' is.
  let onClose: (() => void) | undefined;
  const gone = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error("client went away"));
    response.once("close", onClose);
  });
  gone.catch(() => undefined);
  try {
    let position = start;
    let slot = 0;
    while (position <= end) {
      // The write that last used this slot's buffer must be done before the buffer is refilled.
      await Promise.race([writes[slot], gone]);
      const buffer = buffers[slot]!;
      const wanted = Math.min(buffer.length, end - position + 1);
      const { bytesRead } = await handle.read(buffer, 0, wanted, position);
      if (bytesRead === 0) throw new Error(`file ended at byte ${position}, before ${end + 1}`);
      position += bytesRead;
      writes[slot] = writeChunk(response, bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      slot = (slot + 1) % inFlight;
    }
    await Promise.race([Promise.all(writes), gone]);
    response.end();
    // Every write completed: all buffers are free again.
    buffers.forEach(returnBuffer);
  } catch (error) {
    // Buffers of unfinished writes may still be held by the socket: left to the GC, not reused.
    response.destroy();
    throw error;
  } finally {
    activeDownloads--;
    response.off("close", onClose!);
    await handle.close().catch(() => undefined);
  }
}
