import type { LeaseRecord, LeaseStore } from "../../src/contracts/lease-store.js";

/** A store that forgets; for tests of the pure parts and `dhcp.mode: proxy`, which leases nothing. */
export class MemoryLeaseStore implements LeaseStore {
  readonly rows = new Map<string, LeaseRecord>();
  async loadLeases(): Promise<LeaseRecord[]> {
    return [...this.rows.values()];
  }
  async saveLeases(batch: readonly LeaseRecord[]): Promise<void> {
    for (const lease of batch) this.rows.set(lease.address, { ...lease });
  }
}
