/**
 * Who may start a transfer on port 69, and what it may hold. Pure: no sockets, no clock of its own
 * (the time is a parameter), so the arithmetic an attacker would play against is tested directly.
 *
 * The threat (issue 10): anyone on the provisioning network can send RRQs, and with a forged source
 * address never has to answer them. A transfer that was never acknowledged costs the server a
 * socket and a few resends, and before this budget it held one of the slots real clients need for
 * seconds, so 16 forged addresses could hold all of them. Two mechanisms:
 *
 * - TransferBudget: a transfer is *unverified* until the client acknowledges something (ACK 0 of
 *   an OACK, or ACK 1), which proves it receives at the address it claims. Unverified transfers
 *   live in a small budget of their own (in all and per address); when it is full the oldest one is
 *   evicted rather than the newcomer refused. A real client acknowledges within a round trip, so it
 *   is the forged transfers that age: a flood cannot lock a real client out, only shorten the time
 *   it has to answer, to `maxUnverifiedTransfers / admitted RRQs per second` (≥ 0.25 s with the
 *   defaults, against a round trip of a millisecond on a LAN). Once acknowledged, a transfer counts
 *   only against the ordinary budget (`maxTransfers`, `maxTransfersPerClient`).
 * - RequestRateLimit: a token bucket per source address and one for the whole server, so the work of
 *   answering requests (a path lookup, a socket, a first datagram) is bounded, and so is what the
 *   server sends towards an address that someone else put in the source field (reflection).
 */

export interface TransferBudgetLimits {
  /** Transfers in all, acknowledged or not; beyond it a request is refused with "server busy". */
  maxTransfers: number;
  /** Transfers per client address, acknowledged or not. */
  maxTransfersPerClient: number;
  /** Transfers not yet acknowledged, in all; beyond it the oldest of them is evicted. */
  maxUnverifiedTransfers: number;
  /** Transfers not yet acknowledged per client address; beyond it the request is dropped. */
  maxUnverifiedPerClient: number;
}

/**
 * `client-unverified` is dropped without an answer: a real client retransmits its RRQ once its
 * earlier transfers are acknowledged (a few milliseconds), and an ERROR would end its attempt.
 */
export type Admission =
  | {
      admitted: true;
      /** A transfer to abort (unless it was acknowledged meanwhile) to make room. */
      evict: number | undefined;
    }
  | { admitted: false; reason: "busy" | "client-limit" | "client-unverified" };

interface Entry {
  source: string;
  verified: boolean;
}

/** The transfers the server holds, by id, with their source address and whether they are verified. */
export class TransferBudget {
  private readonly entries = new Map<number, Entry>();
  /** Unverified transfer ids in admission order: the first is the oldest, the one evicted. */
  private readonly unverified = new Map<number, string>();
  private readonly perClient = new Map<string, { all: number; unverified: number }>();

  constructor(private readonly limits: TransferBudgetLimits) {}

  get size(): number {
    return this.entries.size;
  }

  get unverifiedSize(): number {
    return this.unverified.size;
  }

  /** Admit transfer `id` from `source` as unverified, or say why not. */
  admit(id: number, source: string): Admission {
    const client = this.perClient.get(source);
    const full = this.entries.size >= this.limits.maxTransfers;
    // Only acknowledged transfers can make the server busy: unacknowledged ones give way.
    if (full && this.unverified.size === 0) return { admitted: false, reason: "busy" };
    if (client && client.all >= this.limits.maxTransfersPerClient) return { admitted: false, reason: "client-limit" };
    if (client && client.unverified >= this.limits.maxUnverifiedPerClient)
      return { admitted: false, reason: "client-unverified" };
    let evict: number | undefined;
    if (full || this.unverified.size >= this.limits.maxUnverifiedTransfers) {
      evict = this.unverified.keys().next().value;
      if (evict !== undefined) this.release(evict);
    }
    this.entries.set(id, { source, verified: false });
    this.unverified.set(id, source);
    const counts = this.perClient.get(source);
    if (counts) {
      counts.all++;
      counts.unverified++;
    } else {
      this.perClient.set(source, { all: 1, unverified: 1 });
    }
    return { admitted: true, evict };
  }

  /** The client acknowledged: the transfer now counts only against the ordinary budget. */
  verify(id: number): void {
    const entry = this.entries.get(id);
    if (!entry || entry.verified) return;
    entry.verified = true;
    this.unverified.delete(id);
    this.perClient.get(entry.source)!.unverified--;
  }

  /** The transfer ended (or was evicted). Unknown ids are ignored: an evicted one ends later. */
  release(id: number): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    const counts = this.perClient.get(entry.source)!;
    counts.all--;
    if (!entry.verified) {
      this.unverified.delete(id);
      counts.unverified--;
    }
    if (counts.all === 0) this.perClient.delete(entry.source);
  }
}

export interface RequestRateLimits {
  /** Requests per second a source address may sustain. */
  requestsPerSecondPerClient: number;
  /** Requests a source address may send at once (pxelinux tries a dozen config names in a row). */
  requestBurstPerClient: number;
  /** Requests per second for the whole server. */
  requestsPerSecond: number;
  requestBurst: number;
}

/** How many source addresses are remembered; past it, full buckets are forgotten, then the oldest. */
const MAX_TRACKED_CLIENTS = 8192;

interface Bucket {
  tokens: number;
  at: number;
}

function refill(bucket: Bucket, now: number, perSecond: number, burst: number): void {
  if (now > bucket.at) bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
  bucket.at = now;
}

/**
 * Token buckets for requests on port 69: one per source address, one for the server. A request
 * that passes spends a token from both; one refused by the server's bucket spends nothing from its
 * source's, so a quiet client is not charged for a flood from elsewhere.
 */
export class RequestRateLimit {
  private readonly clients = new Map<string, Bucket>();
  private readonly global: Bucket;

  constructor(
    private readonly limits: RequestRateLimits,
    now: number,
    private readonly maxTracked = MAX_TRACKED_CLIENTS,
  ) {
    this.global = { tokens: limits.requestBurst, at: now };
  }

  /** `ok`, or which bucket was empty. `now` in milliseconds, monotonic. */
  take(source: string, now: number): "ok" | "client" | "global" {
    const { requestsPerSecondPerClient, requestBurstPerClient } = this.limits;
    let bucket = this.clients.get(source);
    if (bucket) {
      refill(bucket, now, requestsPerSecondPerClient, requestBurstPerClient);
    } else {
      if (this.clients.size >= this.maxTracked) this.forget(now);
      bucket = { tokens: requestBurstPerClient, at: now };
      this.clients.set(source, bucket);
    }
    if (bucket.tokens < 1) return "client";
    refill(this.global, now, this.limits.requestsPerSecond, this.limits.requestBurst);
    if (this.global.tokens < 1) return "global";
    bucket.tokens--;
    this.global.tokens--;
    return "ok";
  }

  get trackedClients(): number {
    return this.clients.size;
  }

  /**
   * Make room: a bucket that has refilled is the same as no bucket. If a flood from more addresses
   * than that keeps every bucket busy, the oldest half goes; those addresses get a fresh burst,
   * which the server's own bucket still bounds. Amortised O(1): it runs once per `maxTracked / 2`
   * new addresses at most.
   */
  private forget(now: number): void {
    const { requestsPerSecondPerClient, requestBurstPerClient } = this.limits;
    for (const [source, bucket] of this.clients) {
      refill(bucket, now, requestsPerSecondPerClient, requestBurstPerClient);
      if (bucket.tokens >= requestBurstPerClient) this.clients.delete(source);
    }
    if (this.clients.size < this.maxTracked / 2) return;
    let excess = this.clients.size - Math.floor(this.maxTracked / 2);
    for (const source of this.clients.keys()) {
      if (excess-- <= 0) break;
      this.clients.delete(source);
    }
  }
}
