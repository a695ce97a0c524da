import { formatIpv4, parseIpv4 } from "../config/primitives.js";
import type { LeaseRecord } from "../contracts/lease-store.js";

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
  return {
    address,
    mac: record.mac,
    clientId: record.clientId,
    hostname: record.hostname,
    expiresAt: record.expiresAt,
    state: record.state,
  };
}

interface Offer {
  address: number;
  expiresAt: number;
}

/** A lease that becomes reclaimable at `key` (its `expiresAt` when it was recorded). */
interface ReclaimEntry {
  address: number;
  key: number;
}

/** A binary min-heap on `key`: the longest-expired lease is at the top. */
class ReclaimHeap {
  private items: ReclaimEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): ReclaimEntry | undefined {
    return this.items[0];
  }

  push(entry: ReclaimEntry): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.key <= entry.key) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): void {
    const items = this.items;
    const last = items.pop();
    if (!last || items.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && items[right]!.key < items[left]!.key ? right : left;
      if (items[child]!.key >= last.key) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
  }

  clear(): void {
    this.items = [];
  }
}

/** How long `usage()` may answer from its last count: it walks every lease, and only logs need it. */
const USAGE_CACHE_MS = 1_000;

/**
 * Allocation never walks the range (issue 10: 7 ms per DISCOVER on a full /16 before): a cursor
 * over addresses never used, a stack of addresses whose offer lapsed, and a min-heap of recorded
 * leases by expiry, whose top says in O(1) whether anything is reclaimable. Heap entries are not
 * removed when a lease changes; a stale one (its key no longer the lease's `expiresAt`) is dropped
 * when it reaches the top, and the heap is rebuilt when stale entries outnumber live ones.
 */
export class AddressPool {
  private readonly byAddress = new Map<number, PoolLease>();
  private readonly byMac = new Map<string, PoolLease>();
  /** Insertion order is expiry order (every offer is held the same time), so lapsed ones are at the front. */
  private readonly offers = new Map<string, Offer>();
  private readonly offered = new Map<number, string>();
  /** The next address never recorded nor passed over; it only moves forward. */
  private cursor: number;
  /** Addresses with no record whose offer lapsed or was dropped: free again. May hold stale entries. */
  private readonly returned: number[] = [];
  private readonly reclaimable = new ReclaimHeap();
  private usageCache: { at: number; value: { size: number; bound: number; declined: number } } | undefined;

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

  /** How long an offer is held (RFC 2131 §4.3.1); a shared store's offer row lasts as long. */
  get offerHold(): number {
    return this.offerHoldMs;
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
      // Another server's offer to a client that holds a lease here is no binding: the lease stands.
      const heldElsewhere = old && old.address !== lease.address && old.state === "bound";
      const offerOnly =
        lease.state === "offered" && heldElsewhere && old.expiresAt > lease.expiresAt - this.offerHoldMs;
      if (!offerOnly) {
        // A MAC holds one address; its old record stays (history) but no longer points at it. A copy,
        // not a change in place: the old object may be in a batch still on its way to the store.
        if (heldElsewhere && this.byAddress.get(old.address) === old)
          this.byAddress.set(old.address, { ...old, state: "released" });
        this.byMac.set(lease.mac, lease);
      }
    }
    this.reclaimable.push({ address: lease.address, key: lease.expiresAt });
    if (this.reclaimable.size > 2 * this.byAddress.size + 1024) this.rebuildHeap();
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
    if (offeredTo !== undefined && offeredTo !== mac && this.offerIsLive(offeredTo, address, now)) return false;
    return true;
  }

  /**
   * An address for `mac`: the one offered or leased to it before (RFC 2131 §4.3.1 "the client's
   * current or previous address"), else the one it asks for, else a never-used one, else the
   * longest-expired. Undefined when the range is exhausted. O(1) amortised, O(log n) to reclaim.
   */
  choose(mac: string, requested: number | undefined, now: number): number | undefined {
    this.sweepOffers(now);
    const offer = this.offers.get(mac);
    const previous = this.byMac.get(mac);
    // A live binding (made by another server since this one's offer: offers are not voided by what
    // another server does, index.ts `learn`) comes before the offer: the client keeps its address.
    const boundElsewhere =
      previous?.state === "bound" &&
      previous.expiresAt > now &&
      previous.address !== offer?.address &&
      this.contains(previous.address) &&
      this.isAvailableTo(previous.address, mac, now);
    if (boundElsewhere) return previous.address;
    if (offer && offer.expiresAt > now && this.isAvailableTo(offer.address, mac, now)) return offer.address;
    if (
      previous &&
      previous.mac === mac &&
      this.contains(previous.address) &&
      this.isAvailableTo(previous.address, mac, now)
    )
      return previous.address;
    if (requested !== undefined && this.contains(requested) && this.isAvailableTo(requested, mac, now)) {
      const holder = this.byAddress.get(requested);
      // Do not take over another client's expired address while fresh ones remain: it may come back.
      if (!holder || holder.mac === mac) return requested;
    }
    return this.nextFree(now) ?? this.oldestReclaimable(mac, now);
  }

  private offerIsLive(mac: string, address: number, now: number): boolean {
    const offer = this.offers.get(mac);
    return offer !== undefined && offer.address === address && offer.expiresAt > now;
  }

  private isUnrecordedAndFree(address: number, now: number): boolean {
    if (this.byAddress.has(address)) return false;
    const offeredTo = this.offered.get(address);
    return offeredTo === undefined || !this.offerIsLive(offeredTo, address, now);
  }

  /** An address nobody has a record of: a returned one, else the next the cursor has not passed. */
  private nextFree(now: number): number | undefined {
    while (this.returned.length) {
      const address = this.returned.pop()!;
      if (this.isUnrecordedAndFree(address, now)) return address;
    }
    while (this.cursor <= this.end) {
      const address = this.cursor++;
      // Passed over for good: a recorded address is in the heap, an offered one comes back through `returned`.
      if (this.isUnrecordedAndFree(address, now)) return address;
    }
    return undefined;
  }

  private oldestReclaimable(mac: string, now: number): number | undefined {
    for (let top = this.reclaimable.peek(); top; top = this.reclaimable.peek()) {
      const lease = this.byAddress.get(top.address);
      if (!lease || lease.expiresAt !== top.key) {
        this.reclaimable.pop(); // stale: the lease changed since
        continue;
      }
      // The top is the earliest expiry: if it has not expired, nothing has.
      if (lease.state !== "released" && lease.expiresAt > now) return undefined;
      // Offered to someone else: it comes back into the heap if that offer lapses (`returnAddress`).
      if (!this.isAvailableTo(top.address, mac, now)) {
        this.reclaimable.pop();
        continue;
      }
      return top.address;
    }
    return undefined;
  }

  private rebuildHeap(): void {
    this.reclaimable.clear();
    for (const lease of this.byAddress.values())
      this.reclaimable.push({ address: lease.address, key: lease.expiresAt });
  }

  /** An offer for `address` ended without a lease: make the address findable again. */
  private returnAddress(address: number): void {
    const lease = this.byAddress.get(address);
    if (lease) this.reclaimable.push({ address, key: lease.expiresAt });
    else this.returned.push(address);
  }

  hold(mac: string, address: number, now: number): void {
    const old = this.offers.get(mac);
    if (old) this.dropOffer(mac);
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
    this.returnAddress(offer.address);
  }

  /** Forget offers nobody took up; they lapse in the order they were made, so this stops at the first live one. */
  sweepOffers(now: number): void {
    for (const [mac, offer] of this.offers) {
      if (offer.expiresAt > now) break;
      this.dropOffer(mac);
    }
  }

  /** Counts for logs and metrics; at most `USAGE_CACHE_MS` old, so a flood on a full pool does not walk it. */
  usage(now: number): { size: number; bound: number; declined: number } {
    if (this.usageCache && now >= this.usageCache.at && now - this.usageCache.at < USAGE_CACHE_MS)
      return this.usageCache.value;
    let bound = 0;
    let declined = 0;
    for (const lease of this.byAddress.values()) {
      if (lease.expiresAt <= now) continue;
      if (lease.state === "bound") bound++;
      else if (lease.state === "declined") declined++;
    }
    const value = { size: this.size, bound, declined };
    this.usageCache = { at: now, value };
    return value;
  }
}
