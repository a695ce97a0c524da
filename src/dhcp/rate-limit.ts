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
  ) {}

  allow(key: string, now: number): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
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

  /** Forget clients that have been quiet long enough to have a full bucket again. */
  sweep(now: number): void {
    const refillMs = (this.burst / this.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) if (now - bucket.at > refillMs) this.buckets.delete(key);
  }
}
