import { closeSync, read } from "node:fs";
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import { loadAddon } from "../native/load-addon.js";

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
 *
 * Over plain HTTP the bytes do not pass through our memory at all: sendfile(2) (native/tcp-sendfile.c)
 * hands page-cache pages to the socket, as nginx does. A lone 8 MB download spent its CPU in the
 * two copies and the per-chunk thread hops of the copy path (perf: a third in copy_to/from_iter,
 * a tenth in task switches; 5-7 ms of server CPU per download against nginx's 1-2), and on a
 * shared 2-core machine CPU is what a download waits for. The chunk is kept all the same (it
 * counts the download in the budget above): a round of sendfile that finds the socket buffer full
 * for SENDFILE_POLL_MS reads a 64 KiB piece into it, and writing that piece through Node is how we
 * wait for a slow reader, so memory, timeouts and teardown stay Node's. TLS (the bytes are
 * encrypted in user space) takes the copy path.
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

/** What a round of sendfile writes at most before JavaScript looks again (a timeout refresh, a close). */
export const SENDFILE_ROUND_BYTES = 16 * 1024 * 1024;
/**
 * How long a round waits on the pool thread for a full socket buffer to drain before it hands the
 * wait to Node (a piece write). A reader that keeps up drains it in microseconds; a stalled one
 * costs a pool thread this long once per stall.
 */
export const SENDFILE_POLL_MS = 5;
/** The piece written through Node when the socket buffer is full: small, since it is copied. */
export const PIECE_BYTES = 64 * 1024;

interface TcpSendfileAddon {
  sendRound(
    socketFd: number,
    fileFd: number,
    position: number,
    length: number,
    maxSend: number,
    pollMs: number,
    piece: Buffer,
    callback: (error: string | null, sent: number, pieceBytes: number) => void,
  ): void;
}

const sendfileAddon = () =>
  loadAddon<TcpSendfileAddon>("tcp_sendfile", "the HTTP boot service (its sendfile downloads)");

/** Loads the sendfile addon now, so a missing build fails the start, not every download later. */
export function requireSendfile(): void {
  sendfileAddon();
}

/** Bytes sent by sendfile, per connection: Node's socket.bytesWritten does not see them. */
const sentBySendfile = new WeakMap<Socket, number>();
let sendfileBytesTotal = 0;

/** What `socket` sent by sendfile, to add to its bytesWritten. */
export function bytesSentBySendfile(socket: Socket): number {
  return sentBySendfile.get(socket) ?? 0;
}

/** All bytes sent by sendfile since start, for tests and metrics: proves the zero-copy path ran. */
export function sendfileBytes(): number {
  return sendfileBytesTotal;
}

/**
 * The socket's fd when sendfile may write to it now: plain TCP, still open, and nothing of
 * Node's queued in front of us. Read afresh before every round: once libuv closed the fd its
 * number may name another file.
 */
function sendfileFd(response: ServerResponse): number | undefined {
  const socket = response.socket;
  if (!socket || socket instanceof TLSSocket || socket.destroyed || response.destroyed) return undefined;
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

interface RoundResult {
  sent: number;
  pieceBytes: number;
}

function sendRound(
  socketFd: number,
  fileFd: number,
  position: number,
  length: number,
  maxSend: number,
  piece: Buffer,
): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    sendfileAddon().sendRound(
      socketFd,
      fileFd,
      position,
      length,
      maxSend,
      SENDFILE_POLL_MS,
      piece,
      (error, sent, pieceBytes) => {
        if (error === "EOF") reject(new Error(`file ended before byte ${position + length}`));
        else if (error !== null) reject(new Error(`sendfile: ${error}`));
        else resolve({ sent, pieceBytes });
      },
    );
  });
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
 * Stream bytes `start..end` (inclusive) of the open file `fd` to `response`, then end it. Rejects when the
 * client goes away or the file shrinks under us; the response is destroyed then, so the client
 * sees a short body against its Content-Length rather than a silently truncated file. Always
 * closes `fd` (synchronously, once no read of it is in flight: see openFile in static-file.ts).
 */
export async function streamFileRange(fd: number, response: ServerResponse, start: number, end: number): Promise<void> {
  try {
    // A request that arrived before the previous response on its connection ended (HTTP/1.1
    // pipelining, or simply the client's next request overtaking our end() of the last one, which
    // follows the final sendfile round by a thread-pool wake-up) gets its socket when that one is
    // done. Waiting for it keeps such a download on sendfile.
    if (!response.socket && !response.destroyed) await assigned(response);
    if (!response.socket && response.req.destroyed) {
      response.destroy();
      throw new Error("client went away before this response's turn");
    }
    if (sendfileFd(response) !== undefined) await streamBySendfile(fd, response, start, end);
    else await streamByCopying(fd, response, start, end);
  } finally {
    closeSync(fd);
  }
}

/**
 * Resolves once `response` has a socket of its own, or can never get one: a queued response is
 * not closed when its connection dies, its request is (Node 20), and then the caller finds no
 * socket and gives up.
 */
function assigned(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off("socket", done);
      response.off("close", done);
      response.req.off("close", done);
      resolve();
    };
    response.once("socket", done);
    response.once("close", done);
    response.req.once("close", done);
  });
}

/** A promise rejected when the response closes, and how to stop listening. */
function closeOf(response: ServerResponse): { gone: Promise<never>; stop: () => void } {
  // A write callback is not guaranteed to run once the connection is torn down; 'close' is.
  let onClose: (() => void) | undefined;
  const gone = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error("client went away"));
    response.once("close", onClose);
  });
  gone.catch(() => undefined);
  return { gone, stop: () => response.off("close", onClose!) };
}

/** streamFileRange over plain TCP: sendfile rounds, and a piece through Node when the socket is full. */
async function streamBySendfile(fd: number, response: ServerResponse, start: number, end: number): Promise<void> {
  const owned = takeChunk();
  const piece = owned.buffer.length > PIECE_BYTES ? owned.buffer.subarray(0, PIECE_BYTES) : owned.buffer;
  const socket = response.socket!;
  let round: Promise<RoundResult> | undefined;
  let writing: Promise<void> | undefined;
  const closing = closeOf(response);
  try {
    let position = start;
    // The headers go first, through Node: written now, they usually reach the kernel at once
    // (nothing is queued on a connection between responses), and then sendfile may follow right
    // away. Still queued, they would be overtaken: then the first round only reads a piece, whose
    // write through Node comes after them.
    response.flushHeaders();
    while (position <= end) {
      const socketFd = sendfileFd(response);
      if (socketFd === undefined) throw new Error("client went away");
      // Anything of Node's still queued would be overtaken too; then this round only reads a piece.
      const maySend = socket.writableLength === 0 && response.writableLength === 0;
      round = sendRound(socketFd, fd, position, end - position + 1, maySend ? SENDFILE_ROUND_BYTES : 0, piece);
      round.catch(() => undefined);
      const { sent, pieceBytes } = await Promise.race([round, closing.gone]);
      round = undefined;
      if (sent > 0) {
        position += sent;
        sendfileBytesTotal += sent;
        sentBySendfile.set(socket, bytesSentBySendfile(socket) + sent);
        // Node re-arms the inactivity timeout (sendTimeout) on its own writes only.
        if (socket.timeout) socket.setTimeout(socket.timeout);
      }
      if (pieceBytes > 0) {
        writing = writeChunk(response, piece.subarray(0, pieceBytes));
        writing.catch(() => undefined);
        await Promise.race([writing, closing.gone]);
        writing = undefined;
        position += pieceBytes;
      }
    }
    response.end();
    recycle(owned.buffer, true);
  } catch (error) {
    // The pool thread may still be reading into the piece: the file stays open until it is done.
    if (round) await round.catch(() => undefined);
    recycle(owned.buffer, writing === undefined);
    response.destroy();
    throw error;
  } finally {
    if (owned.counted) chunksInUse--;
    closing.stop();
  }
}

/** streamFileRange through our memory: pread into pooled chunks, written through Node (TLS, or no socket yet). */
async function streamByCopying(fd: number, response: ServerResponse, start: number, end: number): Promise<void> {
  const owned = takeChunk();
  // The two buffers trade places after each read-ahead: budgets are counted per download, not per buffer.
  let current = owned.buffer;
  let spare: Buffer | undefined;
  let writing: Promise<void> | undefined;
  let reading: Promise<number> | undefined;
  let writeDone = false;
  const closing = closeOf(response);
  const gone = closing.gone;

  const readInto = async (buffer: Buffer, position: number): Promise<number> => {
    const bytesRead = await new Promise<number>((resolve, reject) =>
      read(fd, buffer, 0, Math.min(buffer.length, end - position + 1), position, (error, n) =>
        error ? reject(error) : resolve(n),
      ),
    );
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
    // The fd is closed next: no read of it may still be in flight (its number could be reused).
    if (reading) await reading.catch(() => undefined);
    throw error;
  } finally {
    if (owned.counted) chunksInUse--;
    closing.stop();
  }
}
