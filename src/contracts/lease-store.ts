/**
 * Where leases live between restarts. One narrow interface; SQLite implements it
 * (`src/store/leases-sqlite.ts`), PostgreSQL may later. The DHCP server sends an ACK only after
 * `saveLeases` for its batch resolved: a lease a client holds is always on disk.
 */
export type LeaseState = "bound" | "released" | "declined";

export interface LeaseRecord {
  /** Dotted quad; at most one record per address, so one address never belongs to two machines. */
  address: string;
  /** Normalised `aa:bb:…`; empty for a declined address nobody holds. */
  mac: string;
  /** Option 61, hex. */
  clientId?: string;
  /** Option 12 as given, or the node's configured hostname. */
  hostname?: string;
  /** Unix ms; a `bound` lease past it is free again (expired leases are reclaimed by allocation). */
  expiresAt: number;
  state: LeaseState;
  /** Unix ms of the last change. */
  updatedAt: number;
}

export interface LeaseStore {
  loadLeases(): Promise<LeaseRecord[]>;
  /** Upsert by address, all or nothing; resolves once the batch is durable. */
  saveLeases(batch: readonly LeaseRecord[]): Promise<void>;
  /** Release what the store holds of its own (a writer thread); the caller's database stays open. */
  close?(): Promise<void>;
}

/** What an operator calls a lease now: `active`, `expired`, `released`, `declined (conflict)` (the CLI and the API). */
export function leaseStatus(lease: LeaseRecord, now: number): string {
  if (lease.state === "bound") return lease.expiresAt > now ? "active" : "expired";
  if (lease.state === "declined") return lease.expiresAt > now ? "declined (conflict)" : "expired";
  return lease.state;
}
