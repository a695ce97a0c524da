import { pino, type Logger } from "pino";

export type { Logger };

/** JSON log lines on stdout (PRODUCT.md §1: `serve` logs JSON lines). */
export function createLogger(level: string = "info"): Logger {
  return pino({ level, base: { svc: "centra-pxe" }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything, for tests and pure code paths. */
export const silentLogger: Logger = pino({ level: "silent" });

/** Where `LogThrottle` counts the kinds it has no room for. */
const OTHER_KINDS = "(other kinds)";

/**
 * At most one log line per kind per interval, and how many lines of that kind were held back since
 * the last one. Lines a flood provokes (a forged packet, a hostile URL) must not be one line each:
 * the log would be the attacker's amplifier (issue 10). The kinds are capped too, since callers
 * may derive them from what the network sent: a kind not logged for an interval is forgotten to
 * make room, and while every slot is live, new kinds share one slot, so however many kinds a
 * flood invents, the memory is bounded and the log gets at most `maxKinds + 1` lines per interval.
 */
export class LogThrottle {
  /** In the order they were last logged, so the first entry is the stalest. */
  private readonly kinds = new Map<string, { at: number; heldBack: number }>();

  constructor(
    readonly intervalMs: number,
    readonly maxKinds = 256,
  ) {}

  /**
   * `undefined` when a line of `kind` was logged less than an interval ago (this one is counted);
   * else the number of lines held back since the last one: log now, and say how many.
   */
  admit(kind: string, now: number): number | undefined {
    let key = kind;
    if (!this.kinds.has(key)) {
      // Forget stale kinds (the shared slot among them) until a named kind fits, or share the slot.
      for (const [stalest, { at }] of this.kinds) {
        if (this.kinds.size - (this.kinds.has(OTHER_KINDS) ? 1 : 0) < this.maxKinds) break;
        if (now - at < this.intervalMs) {
          key = OTHER_KINDS;
          break;
        }
        this.kinds.delete(stalest);
      }
    }
    const entry = this.kinds.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.heldBack++;
      return undefined;
    }
    // Re-inserted, not updated, to keep the map ordered by the last line logged.
    this.kinds.delete(key);
    this.kinds.set(key, { at: now, heldBack: 0 });
    return entry?.heldBack ?? 0;
  }

  /** Kinds remembered now (at most `maxKinds + 1`). */
  get size(): number {
    return this.kinds.size;
  }
}
