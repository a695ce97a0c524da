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
 * Memory follows the client. A download owns one chunk, refilled only once the kernel took all of
 * it. While the client keeps up, the next chunk is read ahead into a second ("spare") chunk, so
 * the disk read and the socket overlap (a lone 8 MB download lost 30% of its speed without it).
 * A client that does not keep up (its write still pending STALLED_MS after the read ahead
 * finished) gives the spare back and its read-ahead bytes are dropped (re-read later from the page
 * cache). So a reader that stops reading holds one chunk of ours (256 KiB), not the two to four
 * 512 KiB chunks that unconditional read-ahead held (60 stalled readers: 70 MiB of RSS, 1.2 MiB
 * each). The kernel's send buffer (net.ipv4.tcp_wmem) does the rest of the read-ahead.
 *
 * Chunks come from pools shared by all downloads, each with a global budget: one for the chunk
 * every download owns, a small one for spares. Past the first budget a download goes on with a
 * small chunk rather than waiting; past the second, without read-ahead. Memory stays bounded
 * (both budgets plus one small chunk per connection, and connections are capped) and a crowd of
 * stalled readers can make other downloads slower, never stop them. With many downloads at once
 * the spares run out, and the other downloads keep the disk and the sockets busy instead.
 */

/** Big enough that per-chunk costs (a pread through the thread pool, a write, a promise) stay small. */
export const CHUNK_BYTES = 256 * 1024;
/** A write still pending this long after the read-ahead finished: the client is not keeping up. */
export const STALLED_MS = 100;
/** What a download gets once the pooled chunks are all in use. */
export const SMALL_CHUNK_BYTES = 16 * 1024;
/** Owned chunks in use at once, all downloads together (64 MiB). */
export const POOL_CHUNKS = 256;
/** Spare (read-ahead) chunks in use at once, all downloads together (4 MiB). */
export const SPARE_CHUNKS = 16;
/** Idle chunks kept for the next downloads; beyond this they go back to the allocator. */
const IDLE_LIMIT = 32;

const idle: Buffer[] = [];
let chunksInUse = 0;
let sparesInUse = 0;

// allocUnsafeSlow: a dedicated allocation, not a slice of Node's shared 8 KiB slab.
const freshChunk = (): Buffer => idle.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);

/** The chunk a download owns, and whether it counts against POOL_CHUNKS. */
function takeChunk(): { buffer: Buffer; counted: boolean } {
  if (chunksInUse >= POOL_CHUNKS) return { buffer: Buffer.allocUnsafeSlow(SMALL_CHUNK_BYTES), counted: false };
  chunksInUse++;
  return { buffer: freshChunk(), counted: true };
}

/** A read-ahead chunk within SPARE_CHUNKS, else none. */
function takeSpare(): Buffer | undefined {
  if (sparesInUse >= SPARE_CHUNKS) return undefined;
  sparesInUse++;
  return freshChunk();
}

/** `reusable`: no read or write may still be using the buffer (else it is left to the GC). */
function recycle(buffer: Buffer, reusable: boolean): void {
  if (reusable && buffer.length === CHUNK_BYTES && idle.length < IDLE_LIMIT) idle.push(buffer);
}

/** Pooled chunks in use (owned and spare) and idle, for tests and metrics. */
export function bufferPoolStats(): { inUse: number; spares: number; idle: number; budget: number } {
  return { inUse: chunksInUse, spares: sparesInUse, idle: idle.length, budget: POOL_CHUNKS };
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

/** Resolves `true` once `promise` settles (either way), or `false` after `ms`. */
function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)));
  const settled = promise.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, late]).finally(() => clearTimeout(timer));
}

/**
 * Stream bytes `start..end` (inclusive) of `handle` to `response`, then end it. Rejects when the
 * client goes away or the file shrinks under us; the response is destroyed then, so the client
 * sees a short body against its Content-Length rather than a silently truncated file. Always
 * closes `handle`.
 */
export async function streamFileRange(
  handle: FileHandle,
  response: ServerResponse,
  start: number,
  end: number,
): Promise<void> {
  const owned = takeChunk();
  // The two buffers trade places after each read-ahead: budgets are counted per download, not per buffer.
  let current = owned.buffer;
  let spare: Buffer | undefined;
  let writing: Promise<void> | undefined;
  let reading: Promise<number> | undefined;
  let writeDone = false;
  // A write callback is not guaranteed to run once the connection is torn down; 'close' is.
  let onClose: (() => void) | undefined;
  const gone = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error("client went away"));
    response.once("close", onClose);
  });
  gone.catch(() => undefined);

  const readInto = async (buffer: Buffer, position: number): Promise<number> => {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position + 1), position);
    if (bytesRead === 0) throw new Error(`file ended at byte ${position}, before ${end + 1}`);
    return bytesRead;
  };
  const giveBackSpare = (reusable: boolean) => {
    if (!spare) return;
    sparesInUse--;
    recycle(spare, reusable);
    spare = undefined;
  };

  try {
    let position = start;
    let bytes = await readInto(current, position);
    // A download starts as a fast client would; the first write that lags says otherwise.
    let keepingUp = true;
    for (;;) {
      position += bytes;
      writeDone = false;
      writing = writeChunk(response, bytes === current.length ? current : current.subarray(0, bytes)).then(
        () => void (writeDone = true),
      );
      // Observed by the races below, or never when the client is gone first: no unhandled rejection.
      writing.catch(() => undefined);
      const more = position <= end;
      if (more && keepingUp && !spare) spare = takeSpare();
      if (more && spare) {
        reading = readInto(spare, position);
        reading.catch(() => undefined);
      }
      const issued = Date.now();

      // The kernel must hold all of the chunk before its buffer is refilled: this wait is the
      // backpressure. With a read ahead in flight, first wait for whichever ends first.
      if (reading) await Promise.race([writing, gone, reading.catch(() => undefined)]);
      if (!writeDone && reading && !(await Promise.race([settlesWithin(writing, STALLED_MS), gone]))) {
        // Not keeping up: drop the read-ahead and give its chunk back while we wait.
        await reading.catch(() => undefined);
        reading = undefined;
        giveBackSpare(true);
        keepingUp = false;
      }
      await Promise.race([writing, gone]);
      writing = undefined;
      if (!reading) keepingUp = Date.now() - issued < STALLED_MS;
      if (!more) break;
      if (reading) {
        bytes = await reading;
        reading = undefined;
        [current, spare] = [spare!, current];
      } else {
        bytes = await readInto(current, position);
      }
    }
    response.end();
    recycle(current, true);
    giveBackSpare(true);
  } catch (error) {
    // A pending write or read may still be using a buffer: such a one goes to the GC, not the pool.
    recycle(current, writing === undefined);
    giveBackSpare(reading === undefined);
    response.destroy();
    throw error;
  } finally {
    if (owned.counted) chunksInUse--;
    response.off("close", onClose!);
    await handle.close().catch(() => undefined);
  }
}
