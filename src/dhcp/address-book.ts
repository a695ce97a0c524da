/**
 * Which address each MAC holds, for `DhcpService.addressOf`: in server mode the leases made durable
 * (pool or fixed), in proxy mode the address each MAC last asked the site's server for. Pure (the
 * clock is a parameter) and bounded: past `capacity` the entry changed longest ago is forgotten,
 * so a flood of spoofed MACs costs memory up to the cap and no more.
 */
export class AddressBook {
  private readonly byMac = new Map<string, { address: number; expiresAt: number }>();
  private readonly byAddress = new Map<number, string>();

  constructor(private readonly capacity = 65_536) {}

  get size(): number {
    return this.byMac.size;
  }

  /** `mac` holds `address` until `expiresAt`; whoever held `address` before no longer does. */
  bind(mac: string, address: number, expiresAt: number): void {
    this.unbindMac(mac);
    this.unbindAddress(address);
    this.byMac.set(mac, { address, expiresAt });
    this.byAddress.set(address, mac);
    if (this.byMac.size > this.capacity) {
      const oldest = this.byMac.keys().next().value;
      if (oldest !== undefined) this.unbindMac(oldest);
    }
  }

  /** Nobody holds `address` any more (released, declined, given to a MAC with no entry here). */
  unbindAddress(address: number): void {
    const mac = this.byAddress.get(address);
    if (mac !== undefined) this.unbindMac(mac);
  }

  unbindMac(mac: string): void {
    const entry = this.byMac.get(mac);
    if (!entry) return;
    this.byMac.delete(mac);
    if (this.byAddress.get(entry.address) === mac) this.byAddress.delete(entry.address);
  }

  addressOf(mac: string, now: number): number | undefined {
    const entry = this.byMac.get(mac);
    return entry && entry.expiresAt > now ? entry.address : undefined;
  }

  has(mac: string, now: number): boolean {
    return this.addressOf(mac, now) !== undefined;
  }

  sweep(now: number): void {
    for (const [mac, entry] of this.byMac) if (entry.expiresAt <= now) this.unbindMac(mac);
  }
}
