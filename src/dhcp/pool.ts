import { formatIpv4, parseIpv4 } from "../config/primitives.js";
import type { LeaseRecord } from "./lease-store.js";

/**
 * The address book of one subnet's dynamic range, in memory. Pure (the clock is a parameter):
 * the server mirrors it to the `LeaseStore` and sends an ACK only once that is durable.
 */
export interface PoolLease {
  address: number;
  mac: string;
  clientId?: string;
  hostname?: string;
  expiresAt: number;
  state: LeaseRecord["state"];
}

export function toRecord(lease: PoolLease, now: number): LeaseRecord {
  return {
    address: formatIpv4(lease.address),
    mac: lease.mac,
    clientId: lease.clientId,
    hostname: lease.hostname,
    expiresAt: lease.expiresAt,
    state: lease.state,
    updatedAt: now,
  };
}

export function fromRecord(record: LeaseRecord): PoolLease | undefined {
  const address = parseIpv4(record.address);
  if (address === undefined) return undefined;
  return { address, mac: record.mac, clientId: record.clientId, hostname: record.hostname, expiresAt: record.expiresAt, state: record.state };
}

interface Offer {
  address: number;
  expiresAt: number;
}

export class AddressPool {
  private readonly byAddress = new Map<number, PoolLease>();
  private readonly byMac = new Map<string, PoolLease>();
  private readonly offers = new Map<string, Offer>();
  private readonly offered = new Map<number, string>();
  /** Where the search for a never-used address resumes, so allocation stays O(1) amortised. */
  private cursor: number;

  constructor(
    readonly start: number,
    readonly end: number,
    /** RFC 2131 §4.3.1 leaves how long an offer is held to the server; long enough for a slow REQUEST. */
    private readonly offerHoldMs = 30_000,
  ) {
    this.cursor = start;
  }

  get size(): number {
    return this.end - this.start + 1;
  }

  contains(address: number): boolean {
    return address >= this.start && address <= this.end;
  }

  /** Load a lease from the store (or record one just made). */
  put(lease: PoolLease): void {
    const previous = this.byAddress.get(lease.address);
    if (previous && this.byMac.get(previous.mac) === previous) this.byMac.delete(previous.mac);
    this.byAddress.set(lease.address, lease);
    if (lease.mac) {
      const old = this.byMac.get(lease.mac);
      // A MAC holds one address; its old record stays (history) but no longer points at it.
      if (old && old.address !== lease.address && old.state === "bound") old.state = "released";
      this.byMac.set(lease.mac, lease);
    }
  }

  leaseOf(mac: string): PoolLease | undefined {
    return this.byMac.get(mac);
  }

  leaseAt(address: number): PoolLease | undefined {
    return this.byAddress.get(address);
  }

  /** Whether `mac` may have `address` now: nobody else holds it, it is not quarantined, not offered to another. */
  isAvailableTo(address: number, mac: string, now: number): boolean {
    const lease = this.byAddress.get(address);
    if (lease && lease.mac !== mac && lease.expiresAt > now && lease.state !== "released") return false;
    const offeredTo = this.offered.get(address);
    if (offeredTo !== undefined && offeredTo !== mac) {
      const offer = this.offers.get(offeredTo);
      if (offer && offer.address === address && offer.expiresAt > now) return false;
    }
    return true;
  }

  /**
   * An address for `mac`: the one offered or leased to it before (RFC 2131 §4.3.1 "the client's
   * current or previous address"), else the one it asks for, else a never-used one, else the
   * longest-expired. Undefined when the range is exhausted.
   */
  choose(mac: string, requested: number | undefined, now: number): number | undefined {
    const offer = this.offers.get(mac);
    if (offer && offer.expiresAt > now && this.isAvailableTo(offer.address, mac, now)) return offer.address;
    const previous = this.byMac.get(mac);
    if (previous && previous.mac === mac && this.contains(previous.address) && this.isAvailableTo(previous.address, mac, now)) return previous.address;
    if (requested !== undefined && this.contains(requested) && this.isAvailableTo(requested, mac, now)) {
      const holder = this.byAddress.get(requested);
      // Do not take over another client's expired address while fresh ones remain: it may come back.
      if (!holder || holder.mac === mac) return requested;
    }
    const fresh = this.nextNeverUsed(now);
    if (fresh !== undefined) return fresh;
    return this.oldestReclaimable(mac, now);
  }

  private nextNeverUsed(now: number): number | undefined {
    const size = this.size;
    for (let i = 0; i < size; i++) {
      const address = this.cursor;
      this.cursor = this.cursor >= this.end ? this.start : this.cursor + 1;
      if (this.byAddress.has(address)) continue;
      const offeredTo = this.offered.get(address);
      if (offeredTo !== undefined) {
        const offer = this.offers.get(offeredTo);
        if (offer && offer.address === address && offer.expiresAt > now) continue;
        this.offered.delete(address);
      }
      return address;
    }
    return undefined;
  }

  private oldestReclaimable(mac: string, now: number): number | undefined {
    let best: PoolLease | undefined;
    for (const lease of this.byAddress.values()) {
      if (!this.isAvailableTo(lease.address, mac, now)) continue;
      if (!best || lease.expiresAt < best.expiresAt) best = lease;
    }
    return best?.address;
  }

  hold(mac: string, address: number, now: number): void {
    const old = this.offers.get(mac);
    if (old && this.offered.get(old.address) === mac) this.offered.delete(old.address);
    this.offers.set(mac, { address, expiresAt: now + this.offerHoldMs });
    this.offered.set(address, mac);
  }

  offerOf(mac: string, now: number): number | undefined {
    const offer = this.offers.get(mac);
    return offer && offer.expiresAt > now ? offer.address : undefined;
  }

  dropOffer(mac: string): void {
    const offer = this.offers.get(mac);
    if (!offer) return;
    this.offers.delete(mac);
    if (this.offered.get(offer.address) === mac) this.offered.delete(offer.address);
  }

  /** Forget offers nobody took up, so the maps do not grow without bound. */
  sweepOffers(now: number): void {
    for (const [mac, offer] of this.offers) if (offer.expiresAt <= now) this.dropOffer(mac);
  }

  /** Counts for logs and metrics. */
  usage(now: number): { size: number; bound: number; declined: number } {
    let bound = 0;
    let declined = 0;
    for (const lease of this.byAddress.values()) {
      if (lease.expiresAt <= now) continue;
      if (lease.state === "bound") bound++;
      else if (lease.state === "declined") declined++;
    }
    return { size: this.size, bound, declined };
  }
}
