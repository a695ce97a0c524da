/**
 * A token bucket per client MAC, so one client (or a stuck ROM in a retransmit loop) cannot starve
 * the others or the pool. Pure: the clock is a parameter.
 */
export class PerClientRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    /** Packets a client may send at once. A real PXE boot (DORA, proxy 4011, iPXE's DORA) is under 10;
     * the headroom is for load generators like perfdhcp that reuse a few MACs at high rates. */
    private readonly burst = 100,
    /** Sustained packets per second: a flooding client gets this much, well under 1% of the server. */
    private readonly perSecond = 50,
    /**
     * Buckets kept at most. Every spoofed MAC costs a bucket, so a flood of random MACs would grow
     * the map until the next sweep; past this size the bucket made longest ago is forgotten (that
     * MAC starts afresh, which only makes the limit more lenient for it).
     */
    private readonly capacity = 65_536,
  ) {}

  allow(key: string, now: number): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.capacity) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
      bucket.at = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Forget clients that have been quiet long enough to have a full bucket again. */
  sweep(now: number): void {
    const refillMs = (this.burst / this.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) if (now - bucket.at > refillMs) this.buckets.delete(key);
  }
}

/** One token bucket for everyone. */
class TokenBucket {
  private tokens: number;
  private at = -Infinity;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  allow(now: number): boolean {
    if (this.at !== -Infinity)
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** `dhcp.budgets.*` of the config: a global rate and a per-MAC one. */
export interface BudgetLimits {
  /** Sustained events per second, all MACs together. */
  rate: number;
  /** Events at once, all MACs together. */
  burst: number;
  /** Events one MAC may cause at once. */
  perMacBurst: number;
  /** One more event per MAC each this many milliseconds. */
  perMacIntervalMs: number;
}

export type BudgetVerdict = "allowed" | "global" | "per-mac";

/**
 * A global budget with a per-MAC share: what a flood of new MACs (each spoofed MAC is free) may
 * cost the server. The per-MAC bucket is asked first, so one noisy MAC never spends the budget
 * the others share; the global bucket caps what any number of MACs can spend together.
 */
export class Budget {
  private readonly global: TokenBucket;
  private readonly perMac: PerClientRateLimit;

  constructor(readonly limits: BudgetLimits) {
    this.global = new TokenBucket(limits.burst, limits.rate);
    this.perMac = new PerClientRateLimit(limits.perMacBurst, 1000 / Math.max(1, limits.perMacIntervalMs));
  }

  take(mac: string, now: number): BudgetVerdict {
    if (!this.perMac.allow(mac, now)) return "per-mac";
    return this.global.allow(now) ? "allowed" : "global";
  }

  sweep(now: number): void {
    this.perMac.sweep(now);
  }
}
