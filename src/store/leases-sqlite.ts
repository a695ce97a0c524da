import type Database from "better-sqlite3";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { LeaseRecord, LeaseState, LeaseStore } from "../contracts/lease-store.js";

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

/** Positional, in the order of `LEASE_COLUMNS`. */
const UPSERT = `INSERT INTO leases (address, mac, client_id, hostname, expires_at, state, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (address) DO UPDATE SET mac = excluded.mac, client_id = excluded.client_id, hostname = excluded.hostname,
       expires_at = excluded.expires_at, state = excluded.state, updated_at = excluded.updated_at`;

/**
 * The writer thread. A commit is an fsync (3-5 ms on ordinary disks); done on the main thread it
 * would stop DHCP for that long. Here the main thread keeps answering while a batch reaches the
 * disk, and the next batch gathers every ACK that arrived meanwhile (group commit).
 * Plain JavaScript evaluated in the worker, so it runs the same from `src` (tsx) and `dist`.
 */
const WRITER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 10000");
db.pragma("synchronous = FULL");
const upsert = db.prepare(workerData.upsert);
const columns = workerData.columns;
const saveAll = db.transaction((values) => {
  for (let at = 0; at < values.length; at += columns) upsert.run(values.slice(at, at + columns));
});
parentPort.on("message", ({ id, batch }) => {
  try { saveAll(batch); parentPort.postMessage({ id }); }
  catch (error) { parentPort.postMessage({ id, error: String(error && error.message || error) }); }
});
`;

/** Values per lease in a batch handed to the writer: UPSERT's parameters, in order. */
const LEASE_COLUMNS = 7;

/**
 * A batch as one flat array of UPSERT's parameters: the writer gets it through postMessage, and
 * cloning one array of strings and numbers costs a fraction of cloning an object per lease.
 */
function toValues(batch: readonly LeaseRecord[]): (string | number | null)[] {
  const values: (string | number | null)[] = [];
  for (const lease of batch) {
    values.push(
      lease.address,
      lease.mac,
      lease.clientId ?? null,
      lease.hostname ?? null,
      lease.expiresAt,
      lease.state,
      lease.updatedAt,
    );
  }
  return values;
}

/** Commits through a writer thread on its own connection to the same file. */
class ThreadedLeaseWriter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(): void; reject(error: Error): void }>();
  private nextId = 1;
  private failure: Error | undefined;

  constructor(file: string) {
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WRITER_SOURCE, {
      eval: true,
      workerData: { file, driver, upsert: UPSERT, columns: LEASE_COLUMNS },
    });
    this.worker.on("message", (message: { id: number; error?: string }) => {
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (this.pending.size === 0) this.worker.unref();
      if (message.error !== undefined) waiter?.reject(new Error(`saving leases failed: ${message.error}`));
      else waiter?.resolve();
    });
    this.worker.on("error", (error) => this.fail(error));
    this.worker.on("exit", (code) => this.fail(new Error(`lease writer thread exited (${code})`)));
    // An idle writer must not keep a process alive that is otherwise done; a pending commit must.
    // (After the listeners: attaching a 'message' listener refs the worker again.)
    this.worker.unref();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.failure ??= new Error("lease store closed");
    await this.worker.terminate();
  }

  save(batch: readonly LeaseRecord[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, batch: toValues(batch) });
    });
  }
}

/**
 * A `LeaseStore` over `db`. Every `saveLeases` is one transaction; the server calls it once per
 * batch of ACKs (group commit), so one fsync covers every ACK of a burst. For a file database the
 * commits run on a writer thread (see `WRITER_SOURCE`); `:memory:` commits inline.
 */
export function createSqliteLeaseStore(db: Db, options: { writerThread?: boolean } = {}): LeaseStore {
  ensureLeaseTable(db);
  // An ACK is only sent after its commit returned; that promise is worth something only if the
  // commit reached the disk. With WAL, NORMAL would fsync at checkpoints only and a power cut could
  // lose the last ACKs, so insist on FULL (an fsync of the WAL per commit) for this connection.
  const synchronous = db.pragma("synchronous", { simple: true }) as number;
  if (synchronous < 2) db.pragma("synchronous = FULL");
  const upsert = db.prepare(UPSERT);
  const saveAll = db.transaction((batch: readonly LeaseRecord[]) => {
    const values = toValues(batch);
    for (let at = 0; at < values.length; at += LEASE_COLUMNS) upsert.run(values.slice(at, at + LEASE_COLUMNS));
  });
  const selectAll = db.prepare("SELECT * FROM leases");
  const threaded =
    (options.writerThread ?? true) && !db.memory && db.name !== "" ? new ThreadedLeaseWriter(db.name) : undefined;
  return {
    async loadLeases() {
      return (selectAll.all() as LeaseRow[]).map(fromRow);
    },
    async saveLeases(batch) {
      if (!batch.length) return;
      if (threaded) return threaded.save(batch);
      saveAll(batch);
    },
    async close() {
      await threaded?.close();
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
