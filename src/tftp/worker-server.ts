import { parentPort, workerData } from "node:worker_threads";
import { FileCache, type FileCacheOptions } from "./file-source.js";
import {
  runTransfer,
  type RunningTransfer,
  type TftpLimits,
  type TransferEnd,
  type TransferJob,
} from "./transfer-server.js";

/**
 * A transfer worker thread. Port 69 stays in the main thread (decoding, path checks, limits); the
 * transfers, which are where the datagrams are, spread over worker threads so a boot storm uses
 * every core instead of one. Each worker has its own bounded file cache.
 */

export type ToWorker =
  | { type: "transfer"; id: number; job: TransferJob }
  | { type: "evict"; id: number }
  | { type: "supersede"; id: number }
  | { type: "stop" };
export type FromWorker =
  | { type: "verified"; id: number }
  | { type: "last-block-sent"; id: number }
  | { type: "end"; id: number; end: TransferEnd; cache: { hits: number; misses: number; bytes: number } }
  | { type: "stopped" }
  | { type: "ready" };

export interface WorkerConfig {
  limits: TftpLimits;
  cache: FileCacheOptions;
}

const port = parentPort;
if (!port) throw new Error("worker-server.ts runs only as a worker thread");
const config = workerData as WorkerConfig;
const cache = new FileCache(config.cache);
const running = new Map<number, RunningTransfer>();
// Tells the server the module loaded (the "online" event fires before that).
port.postMessage({ type: "ready" } satisfies FromWorker);

port.on("message", (message: ToWorker) => {
  if (message.type === "stop") {
    for (const transfer of running.values()) transfer.abort();
    port.postMessage({ type: "stopped" } satisfies FromWorker);
    return;
  }
  if (message.type === "evict") {
    // Gone already, or acknowledged since the server decided: nothing to do (runTransfer's evict).
    running.get(message.id)?.evict();
    return;
  }
  if (message.type === "supersede") {
    running.get(message.id)?.supersede();
    return;
  }
  const { id, job } = message;
  running.set(
    id,
    runTransfer(job, cache, config.limits, {
      onVerified: () => port.postMessage({ type: "verified", id } satisfies FromWorker),
      onLastBlockSent: () => port.postMessage({ type: "last-block-sent", id } satisfies FromWorker),
      onEnd: (end) => {
        running.delete(id);
        port.postMessage({
          type: "end",
          id,
          end,
          cache: { hits: cache.hits, misses: cache.misses, bytes: cache.cachedBytes },
        } satisfies FromWorker);
      },
    }),
  );
});
