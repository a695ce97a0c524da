import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { BootObserver } from "../contracts/boot-observation.js";
import type { Service } from "../contracts/service.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { NodeEvent, Store } from "../store/store.js";
import {
  type BootAttemptRecord,
  type BootAttemptView,
  type LifecycleStep,
  SUCCESSES,
  type Verdict,
  type VerdictContext,
  verdictOf,
  viewOf,
} from "./attempt.js";
import { BootTimeline, type TimelineLimits, type TimelineSnapshot } from "./collector.js";

export interface TimelineOptions {
  config: Config;
  /** Node id → MACs, for lifecycle events. */
  store: Pick<Store, "nodes">;
  logger: Logger;
  /** The provisioning part's live events (install boot, callback, timeout). */
  onEvent(listener: (event: NodeEvent) => void): () => void;
  /** More MACs to count as the inventory's (e.g. DHCP reservations), beside the nodes the store lists at start and events name. */
  isKnown?(mac: string): boolean;
  /** Where the timeline is kept across restarts; undefined: memory only. */
  file?: string;
  now?: () => number;
  /** How often verdicts are re-judged (stalls, deadlines); default 5 s. The file is saved every 30 s at most. */
  sweepMs?: number;
}

/** A verdict that changed, for the metrics and the alerts. `previous` is undefined for a new attempt. */
export type VerdictListener = (attempt: BootAttemptRecord, verdict: Verdict, previous: Verdict | undefined) => void;

export interface TimelinePart {
  /** What DHCP, TFTP and HTTP call with what they saw. */
  observer: BootObserver;
  timeline: BootTimeline;
  /** Loads the saved timeline at start, saves it at stop (and every sweep when it changed). */
  service: Service;
  /** The attempts of these MACs (one machine), newest first. */
  boots(macs: readonly string[], nodeId?: string): BootAttemptView[];
  boot(macs: readonly string[], attempt: number, nodeId?: string): BootAttemptView | undefined;
  /** Attempts with news since `since` (Unix ms), newest first, without their steps. */
  recent(since: number, limit: number): BootAttemptView[];
  verdict(attempt: BootAttemptRecord): Verdict;
  /** Called when an attempt's verdict changes (judged on each step and each sweep). */
  onVerdict(listener: VerdictListener): () => void;
  /** Judge what changed now (the sweep does this on its own; tests call it to not wait). */
  sweep(): void;
}

const SNAPSHOT_VERSION = 1;
/** How often a changed timeline is written out (and on stop): what a crash may lose. */
const SAVE_EVERY_MS = 30_000;

export function timelineLimits(config: Config): TimelineLimits {
  return {
    machines: config.timeline.machines,
    strangers: config.timeline.strangers,
    attemptsPerMachine: config.timeline.attemptsPerMachine,
    stepsPerAttempt: config.timeline.stepsPerAttempt,
  };
}

/**
 * The boot timeline as a daemon part. Kept in memory, within `timeline.*` caps, and saved to
 * `stateDir/timeline.json` on stop and every 30 s when it changed: a timeline is a diagnosis, written on
 * every DHCP packet, TFTP transfer and download of every boot, so it does not go through the
 * store's fsync per write (the boot storm's budget); what must survive a crash — the lifecycle's
 * outcome — is in the store's events already. A `kill -9` loses at most the last 30 s of steps.
 */
export function createTimeline(options: TimelineOptions): TimelinePart {
  const now = options.now ?? Date.now;
  let config = options.config;
  const log = options.logger.child({ part: "timeline" });
  /**
   * MACs of registered nodes (not only discovered): their timelines live in the `machines` pool,
   * which strangers cannot push them out of. Read at start, kept up by the inventory's events.
   */
  const registered = new Set<string>();
  const timeline = new BootTimeline({
    limits: timelineLimits(config),
    now,
    isKnown: (mac) => registered.has(mac) || (options.isKnown?.(mac) ?? false),
  });
  const listeners = new Set<VerdictListener>();
  /** Attempts whose verdict may still change by waiting, with the verdict last told to listeners. */
  const open = new Map<BootAttemptRecord, Verdict>();
  let dirty = false;
  let sweeper: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;

  const context = (attempt: BootAttemptRecord): VerdictContext => ({
    now: now(),
    provisioningTimeoutMs: config.provisioning.timeout,
    stallMs: config.timeline.stallAfter,
    // A machine that rebooted to its disk five times is not looping; one that never got anywhere is.
    earlierStarts: timeline
      .history(attempt.mac)
      .filter((a) => a.attempt < attempt.attempt && !(a.settled !== undefined && SUCCESSES.has(a.settled)))
      .map((a) => a.startedAt),
    bootLoop: { attempts: config.alerts.bootLoop.attempts, windowMs: config.alerts.bootLoop.window },
  });
  const verdict = (attempt: BootAttemptRecord) => verdictOf(attempt, context(attempt));

  const judge = (attempt: BootAttemptRecord) => {
    const next = verdict(attempt);
    const previous = open.get(attempt);
    if (next.final) open.delete(attempt);
    else open.set(attempt, next);
    if (previous?.verdict === next.verdict && previous.final === next.final) return;
    if (!previous && next.final && attempt.settled === next.verdict) return;
    attempt.settled = next.final ? next.verdict : undefined;
    for (const listener of listeners) {
      try {
        listener(attempt, next, previous);
      } catch (error) {
        log.error({ err: error }, "timeline verdict listener failed");
      }
    }
  };

  timeline.onStep((attempt) => {
    dirty = true;
    judge(attempt);
  });

  const sweep = () => {
    for (const attempt of [...open.keys()]) {
      // Pushed out by the caps meanwhile: nobody can ask for it any more.
      if (!timeline.history(attempt.mac).includes(attempt)) open.delete(attempt);
      else judge(attempt);
    }
  };

  const onLifecycle = async (event: NodeEvent) => {
    const step = lifecycleStep(event);
    const changesMacs =
      event.kind === "created" || event.kind === "updated" || event.kind === "mac-added" || event.kind === "transition";
    if (!step && !changesMacs) return;
    const node = await options.store.nodes.get(event.nodeId);
    if (!node) return;
    if (node.source !== "discovered") for (const mac of node.macs) registered.add(mac);
    if (step) timeline.lifecycle(node.macs, step);
  };

  const load = async () => {
    if (!options.file) return;
    let text: string;
    try {
      text = await readFile(options.file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") log.warn({ err: error }, "timeline file not read");
      return;
    }
    try {
      const snapshot = JSON.parse(text) as TimelineSnapshot;
      if (snapshot.version !== SNAPSHOT_VERSION || !Array.isArray(snapshot.attempts)) throw new Error("unknown format");
      timeline.restore(snapshot);
      for (const { attempt } of timeline.latestAttempts())
        if (attempt.settled === undefined) open.set(attempt, verdict(attempt));
      log.info({ attempts: snapshot.attempts.length }, "boot timeline restored");
    } catch (error) {
      log.warn({ err: error, file: options.file }, "timeline file unreadable; starting empty");
    }
  };

  const save = async () => {
    if (!options.file || !dirty) return;
    dirty = false;
    const temporary = `${options.file}.tmp`;
    try {
      await mkdir(dirname(options.file), { recursive: true });
      await writeFile(temporary, JSON.stringify(timeline.snapshot()));
      // Atomic: a crash mid-write leaves the previous file, never half of one.
      await rename(temporary, options.file);
    } catch (error) {
      dirty = true;
      log.warn({ err: error, file: options.file }, "timeline not saved");
    }
  };

  const view = (attempt: BootAttemptRecord, steps: boolean, nodeId?: string) =>
    viewOf(attempt, verdict(attempt), now(), { steps, ...(nodeId !== undefined ? { nodeId } : {}) });

  return {
    observer: (observation) => {
      try {
        timeline.observe(observation);
      } catch (error) {
        log.error({ err: error }, "timeline observation failed");
      }
    },
    timeline,
    service: {
      name: "timeline",
      async start() {
        for (const node of await options.store.nodes.list())
          if (node.source !== "discovered") for (const mac of node.macs) registered.add(mac);
        await load();
        unsubscribe = options.onEvent((event) => {
          onLifecycle(event).catch((error: unknown) => log.error({ err: error }, "timeline event failed"));
        });
        let lastSave = now();
        sweeper = setInterval(() => {
          sweep();
          // Not every sweep: a fleet's timeline is megabytes of JSON, and a boot storm dirties it constantly.
          if (now() - lastSave < SAVE_EVERY_MS) return;
          lastSave = now();
          void save();
        }, options.sweepMs ?? 5_000);
        sweeper.unref();
      },
      async stop() {
        if (sweeper) clearInterval(sweeper);
        sweeper = undefined;
        unsubscribe?.();
        dirty = true;
        await save();
      },
      reload(next) {
        config = next;
        timeline.limits = timelineLimits(next);
      },
      health: () => (sweeper ? { ok: true } : { ok: false, detail: "not started" }),
    },
    boots: (macs, nodeId) => timeline.attemptsOf(macs).map((a) => view(a, false, nodeId)),
    boot(macs, attempt, nodeId) {
      const found = timeline.attemptsOf(macs).find((a) => a.attempt === attempt);
      return found && view(found, true, nodeId);
    },
    recent: (since, limit) => timeline.recent(since, limit).map((a) => view(a, false)),
    verdict,
    onVerdict(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    sweep,
  };
}

/** The lifecycle events a timeline shows (src/provisioning/lifecycle-service.ts writes them). */
export function lifecycleStep(event: NodeEvent): LifecycleStep | undefined {
  const at = Date.parse(event.at);
  if (event.kind === "install-boot") return { source: "lifecycle", at, kind: "install-boot" };
  if (event.kind === "callback-rejected")
    return { source: "lifecycle", at, kind: "callback-rejected", message: String(event.details.reason ?? "") };
  if (event.kind !== "transition") return undefined;
  const message = typeof event.details.message === "string" ? event.details.message : undefined;
  switch (event.details.action) {
    case "callback-succeeded":
      return { source: "lifecycle", at, kind: "callback-succeeded", ...(message ? { message } : {}) };
    case "callback-failed":
      return { source: "lifecycle", at, kind: "callback-failed", ...(message ? { message } : {}) };
    case "timeout":
      return { source: "lifecycle", at, kind: "timeout" };
    default:
      return undefined;
  }
}
