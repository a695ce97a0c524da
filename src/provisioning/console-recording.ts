import type { BmcEndpoint } from "../bmc/client.js";
import { ConsoleRecordings, DEFAULT_CONSOLE_MAX_BYTES, type SolOptions } from "../bmc/sol.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import { consoleLogFile } from "../files/state-dir.js";
import type { Logger } from "../log.js";
import type { NodeEvent, NodeRecord, Store } from "../store/store.js";

/**
 * The server records the serial console (IPMI SOL) of every node that is `provisioning` and has an
 * IPMI BMC, to `stateDir/consoles/<node id>.log`, and stops 15 s after it leaves `provisioning`:
 * a failed install can be read afterwards (`GET /api/v1/nodes/{id}/console`, `nodes console
 * --recorded`). A new attempt appends to the same file, so the previous one stays above it.
 *
 * Which nodes: on every transition event, and on a slow poll as a safety net (a missed event, a
 * BMC added while the node was already provisioning).
 */
export interface ConsoleRecordingOptions {
  store: Store;
  logger: Logger;
  stateDir: () => string;
  /** The node's BMC with its password resolved, or undefined (no BMC, or its password unreadable). */
  endpointOf: (node: NodeRecord) => Promise<BmcEndpoint | undefined>;
  onEvent: (listener: (event: NodeEvent) => void) => () => void;
  sol?: SolOptions;
  maxBytes?: number;
  pollMs?: number;
}

export function createConsoleRecordingService(options: ConsoleRecordingOptions): Service & { recording(): string[] } {
  const recordings = new ConsoleRecordings((nodeId) => consoleLogFile(options.stateDir(), nodeId), {
    ...options.sol,
    maxBytes: options.maxBytes ?? DEFAULT_CONSOLE_MAX_BYTES,
    onProblem: (nodeId, message) => options.logger.warn({ node: nodeId, problem: message }, "console recording"),
  });
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  let running: Promise<void> = Promise.resolve();
  let lastError: string | undefined;

  const reconcileNow = async (): Promise<void> => {
    try {
      const nodes = await options.store.nodes.list({ state: "provisioning" });
      const wanted = new Map<string, BmcEndpoint>();
      for (const node of nodes) {
        const endpoint = await options.endpointOf(node);
        if (endpoint?.protocol === "ipmi") wanted.set(node.id, endpoint);
      }
      await recordings.reconcile(wanted);
      lastError = undefined;
    } catch (error) {
      lastError = (error as Error).message;
      options.logger.warn({ problem: lastError }, "console recording");
    }
  };
  // One reconcile at a time, in order: a burst of events never runs two against each other.
  const reconcile = () => {
    running = running.then(reconcileNow);
    return running;
  };

  return {
    name: "console-recording",
    async start() {
      unsubscribe = options.onEvent((event) => {
        if (event.fromState === "provisioning" || event.toState === "provisioning" || event.kind === "updated")
          void reconcile();
      });
      timer = setInterval(() => void reconcile(), options.pollMs ?? 30_000);
      timer.unref();
      await reconcile();
    },
    async stop() {
      unsubscribe?.();
      clearInterval(timer);
      await running;
      await recordings.stopAll();
    },
    health(): ServiceHealth {
      // A BMC that drops SOL is the node's problem, not the server's: only a failing inventory read counts.
      return lastError ? { ok: false, detail: lastError } : { ok: true };
    },
    recording: () => recordings.recording,
  };
}
