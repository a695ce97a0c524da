/**
 * What the server does past saturation (issue 12): requests wait here between the socket and the
 * handler, in two lanes. Clients already in an exchange with us (a REQUEST for the address we
 * OFFERed, a renewal, a DECLINE or RELEASE of what they hold) are handled before any new DISCOVER,
 * and when the server cannot keep up it is new DISCOVERs that are dropped ("shed"), as they arrive.
 *
 * Why not leave the queueing to the kernel: its receive buffer is one FIFO that, once full, drops
 * whatever arrives next, REQUESTs included. Every REQUEST lost that way throws away the work of the
 * OFFER that led to it, and a client that finishes its DORA costs less than a new one. So the edge
 * reads the socket faster than it handles (reading is cheap) and lets this queue decide.
 *
 * Pure: no socket, no clock. The edge (`server.ts`) admits, takes and bounds the time it spends.
 */

/** `inProgress`: a client we hold an offer, lease or reservation for. `fresh`: a DISCOVER, or a stranger. */
export type IntakeLane = "inProgress" | "fresh";

export interface IntakeLimits {
  /**
   * Requests waiting in the in-progress lane at most. Only MACs we already hold something for land
   * here, so its bound is against a flood of forged known MACs, not a limit ever reached by load.
   */
  inProgress: number;
  /**
   * DISCOVERs (and requests from unknown clients) waiting at most. It bounds how stale an OFFER can
   * be: at ~50 µs a DISCOVER, 512 waiting is ~25 ms, well inside any client's first retransmission
   * (RFC 2131 §4.1: 4 s), and deep enough for a rack powering on at once.
   */
  fresh: number;
}

export const DEFAULT_INTAKE_LIMITS: IntakeLimits = { inProgress: 4096, fresh: 512 };

/** A bounded FIFO over a ring buffer: O(1) push and shift, no array shifting under load. */
class BoundedQueue<T> {
  private readonly slots: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.slots = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(item: T): boolean {
    if (this.count >= this.capacity) return false;
    this.slots[(this.head + this.count) % this.capacity] = item;
    this.count++;
    return true;
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return item;
  }
}

interface Queued<T> {
  item: T;
  /** The client (its chaddr): a fresh request is superseded by a later in-progress one of the same client. */
  client: string | undefined;
  seq: number;
}

/**
 * Two bounded lanes; the in-progress one is always served first. That reorders one client's
 * requests: its DISCOVER can still wait in the fresh lane when its REQUEST (for another server's
 * OFFER, which made it known here) has been handled. Such a DISCOVER is stale (the client has moved
 * on, RFC 2131 §4.4.1) and is skipped: answered, it would hold an address for a client that took
 * another, and on two servers it once outlived the client's own lease.
 */
export class Intake<T> {
  private readonly inProgress: BoundedQueue<Queued<T>>;
  private readonly fresh: BoundedQueue<Queued<T>>;
  private seq = 0;
  /** Per client, the seq of its newest in-progress request; only while fresh requests wait. */
  private readonly lastInProgress = new Map<string, number>();
  private readonly bound: number;
  /** Fresh requests skipped because a later in-progress one of the same client was handled. */
  private superseded = 0;

  constructor(limits: IntakeLimits = DEFAULT_INTAKE_LIMITS) {
    this.inProgress = new BoundedQueue(Math.max(1, limits.inProgress));
    this.fresh = new BoundedQueue(Math.max(1, limits.fresh));
    this.bound = this.inProgress.capacity + this.fresh.capacity;
  }

  /**
   * Queue `item` in `lane`; false when that lane is full and the item is dropped. A full fresh lane
   * drops the newcomer, not a DISCOVER already waiting: tail drop keeps the wait bounded and spends
   * nothing on a request that will not be answered. `client` names who sent it.
   */
  admit(item: T, lane: IntakeLane, client?: string): boolean {
    const queued = { item, client, seq: this.seq++ };
    if (lane === "fresh") return this.fresh.push(queued);
    if (!this.inProgress.push(queued)) return false;
    if (client !== undefined && this.fresh.size > 0) {
      // Bounded: past it the map starts over, and a stale DISCOVER is at worst answered.
      if (this.lastInProgress.size >= this.bound) this.lastInProgress.clear();
      this.lastInProgress.set(client, queued.seq);
    }
    return true;
  }

  /**
   * The next request to handle: in-progress clients first, then new ones in arrival order; with
   * `inProgressOnly`, only the former (the new ones wait, and past the lane's depth are shed).
   */
  next(inProgressOnly = false): T | undefined {
    const urgent = this.inProgress.shift();
    if (urgent) return urgent.item;
    if (inProgressOnly) return undefined;
    for (let queued = this.fresh.shift(); queued; queued = this.fresh.shift()) {
      const later = queued.client === undefined ? undefined : this.lastInProgress.get(queued.client);
      if (later !== undefined && later > queued.seq) {
        this.superseded++;
        continue;
      }
      if (this.fresh.size === 0) this.lastInProgress.clear();
      return queued.item;
    }
    this.lastInProgress.clear();
    return undefined;
  }

  /** The stale fresh requests skipped since the last call (`next`), for the server's counters. */
  takeSuperseded(): number {
    const count = this.superseded;
    this.superseded = 0;
    return count;
  }

  /** Whether `lane` would drop what comes next: the edge may then shed a DISCOVER before decoding it. */
  isFull(lane: IntakeLane): boolean {
    const queue = lane === "inProgress" ? this.inProgress : this.fresh;
    return queue.size >= queue.capacity;
  }

  get size(): number {
    return this.inProgress.size + this.fresh.size;
  }
}
