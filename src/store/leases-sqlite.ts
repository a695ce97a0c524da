import type Database from "better-sqlite3";
import type { LeaseRecord, LeaseState, LeaseStore } from "../dhcp/lease-store.js";

type Db = Database.Database;

interface LeaseRow {
  address: string;
  mac: string;
  client_id: string | null;
  hostname: string | null;
  expires_at: number;
  state: string;
  updated_at: number;
}

/**
 * DHCP leases in SQLite, in the shared database file. The table is the DHCP part's own, created
 * here; `address` is the primary key, so the file itself can never hold two machines on one address.
 */
export function ensureLeaseTable(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS leases (
      address    TEXT PRIMARY KEY,   -- dotted quad, yiaddr
      mac        TEXT NOT NULL,      -- chaddr, '' for a declined address
      client_id  TEXT,               -- option 61, hex
      hostname   TEXT,               -- option 12
      expires_at INTEGER NOT NULL,   -- unix ms
      state      TEXT NOT NULL,      -- bound | released | declined
      updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS leases_mac ON leases (mac);
  `);
}

function fromRow(row: LeaseRow): LeaseRecord {
  return {
    address: row.address,
    mac: row.mac,
    clientId: row.client_id ?? undefined,
    hostname: row.hostname ?? undefined,
    expiresAt: row.expires_at,
    state: row.state as LeaseState,
    updatedAt: row.updated_at,
  };
}

/**
 * A `LeaseStore` over `db`. Every `saveLeases` is one transaction; the server calls it once per
 * batch of ACKs (group commit), so one fsync covers every ACK of a burst.
 */
export function createSqliteLeaseStore(db: Db): LeaseStore {
  ensureLeaseTable(db);
  // An ACK is only sent after its commit returned; that promise is worth something only if the
  // commit reached the disk. With WAL, NORMAL would fsync at checkpoints only and a power cut could
  // lose the last ACKs, so insist on FULL (an fsync of the WAL per commit) for this connection.
  const synchronous = db.pragma("synchronous", { simple: true }) as number;
  if (synchronous < 2) db.pragma("synchronous = FULL");
  const upsert = db.prepare(
    `INSERT INTO leases (address, mac, client_id, hostname, expires_at, state, updated_at)
     VALUES (@address, @mac, @clientId, @hostname, @expiresAt, @state, @updatedAt)
     ON CONFLICT (address) DO UPDATE SET mac = excluded.mac, client_id = excluded.client_id, hostname = excluded.hostname,
       expires_at = excluded.expires_at, state = excluded.state, updated_at = excluded.updated_at`,
  );
  const saveAll = db.transaction((batch: readonly LeaseRecord[]) => {
    for (const lease of batch) {
      upsert.run({ address: lease.address, mac: lease.mac, clientId: lease.clientId ?? null, hostname: lease.hostname ?? null, expiresAt: lease.expiresAt, state: lease.state, updatedAt: lease.updatedAt });
    }
  });
  const selectAll = db.prepare("SELECT * FROM leases");
  return {
    async loadLeases() {
      return (selectAll.all() as LeaseRow[]).map(fromRow);
    },
    async saveLeases(batch) {
      if (batch.length) saveAll(batch);
    },
  };
}

/** Every lease, in address order, for `centra-pxe leases` and the API. */
export function listLeases(db: Db): LeaseRecord[] {
  ensureLeaseTable(db);
  const rows = db.prepare("SELECT * FROM leases").all() as LeaseRow[];
  const key = (address: string) => address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
  return rows.map(fromRow).sort((a, b) => key(a.address) - key(b.address));
}
