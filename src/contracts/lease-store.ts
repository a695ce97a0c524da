/**
 * Where leases live between restarts. One narrow interface; SQLite implements it
 * (`src/store/leases-sqlite.ts`) for one server, PostgreSQL (`src/store/leases-pg.ts`) for several. The DHCP server sends an ACK only after
 * `saveLeases` for its batch resolved: a lease a client holds is always on disk.
 */
/**
 * `offered`: an address held for a client between OFFER and REQUEST, written only to a store shared
 * by several servers (so the others offer it to no one else); it lapses with its short expiry.
 */
export type LeaseState = "bound" | "released" | "declined" | "offered";

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
  /**
   * A reservation's address outside every pool (the inventory gives it to this MAC alone): saved
   * without the claim check of a shared store. Not stored.
   */
  fixed?: boolean;
}

/** What a shared store did not save: the batch's leases whose address another client holds. */
export interface LeaseSaveResult {
  /** The current holder's record for each refused address. */
  refused: LeaseRecord[];
}

export interface LeaseStore {
  loadLeases(): Promise<LeaseRecord[]>;
  /** Upsert by address, all or nothing; resolves once the batch is durable. */
  saveLeases(batch: readonly LeaseRecord[]): Promise<void>;
  /**
   * A store shared by several servers (PostgreSQL): `saveLeases`, but a pool lease is saved only
   * over a row of the same MAC, a released or an expired one (a DECLINE and a `fixed` address
   * always), and the rest are named in `refused`. That is what keeps two servers from leasing one
   * address to two machines; the DHCP part uses it instead of `saveLeases` when present.
   */
  claimLeases?(batch: readonly LeaseRecord[]): Promise<LeaseSaveResult>;
  /** A shared store: leases other servers committed, as they commit. Returns the unsubscribe function. */
  watch?(listener: (records: LeaseRecord[]) => void): () => void;
  /** A shared store: the records of one MAC, for a client this server has no record of (RFC 2131 §4.4.5). */
  findByMac?(mac: string): Promise<LeaseRecord[]>;
  /** Release what the store holds of its own (a writer thread); the caller's database stays open. */
  close?(): Promise<void>;
}
