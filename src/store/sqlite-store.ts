import Database from "better-sqlite3";
import type { ImageRepository, ImageVersionRecord, Store } from "./store.js";

type Db = Database.Database;

/**
 * Schema migrations, applied in order inside one transaction each; `user_version` records how far
 * a file has come. Append only: a released migration is never edited.
 */
const MIGRATIONS: readonly ((db: Db) => void)[] = [
  (db) =>
    db.exec(`
      CREATE TABLE image_versions (
        name     TEXT NOT NULL,
        version  TEXT NOT NULL,
        files    TEXT NOT NULL,  -- JSON: role → { size, sha256 }
        cmdline  TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        PRIMARY KEY (name, version)
      );
    `),
];

export interface SqliteStore extends Store {
  /** The open database, for parts that keep their own tables in the same file (DHCP leases). */
  readonly db: Db;
}

/** Open (creating if needed) the embedded store at `file`; `:memory:` for tests. */
export function openSqliteStore(file: string): SqliteStore {
  const db = new Database(file);
  // WAL lets readers (the CLI, the API) run while the server writes; FULL makes every commit
  // durable before it returns, which the DHCP part relies on before an ACK leaves.
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return {
    db,
    images: new SqliteImageRepository(db),
    schemaVersion: async () => db.pragma("user_version", { simple: true }) as number,
    close: async () => {
      db.close();
    },
  };
}

function migrate(db: Db): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database is at schema ${current}, newer than this program knows (${MIGRATIONS.length}); upgrade centra-pxe`);
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      MIGRATIONS[version]!(db);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

interface ImageRow {
  name: string;
  version: string;
  files: string;
  cmdline: string;
  added_at: string;
}

function imageFromRow(row: ImageRow): ImageVersionRecord {
  return { name: row.name, version: row.version, files: JSON.parse(row.files) as ImageVersionRecord["files"], cmdline: row.cmdline, addedAt: row.added_at };
}

class SqliteImageRepository implements ImageRepository {
  constructor(private readonly db: Db) {}

  async put(record: ImageVersionRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO image_versions (name, version, files, cmdline, added_at, seq)
         VALUES (@name, @version, @files, @cmdline, @addedAt, (SELECT COALESCE(MAX(seq), 0) + 1 FROM image_versions))
         ON CONFLICT (name, version) DO UPDATE SET files = excluded.files, cmdline = excluded.cmdline, added_at = excluded.added_at`,
      )
      .run({ ...record, files: JSON.stringify(record.files) });
  }

  async get(name: string, version: string): Promise<ImageVersionRecord | undefined> {
    const row = this.db.prepare(`SELECT * FROM image_versions WHERE name = ? AND version = ?`).get(name, version) as ImageRow | undefined;
    return row && imageFromRow(row);
  }

  async list(name?: string): Promise<ImageVersionRecord[]> {
    const rows = (
      name === undefined
        ? this.db.prepare(`SELECT * FROM image_versions ORDER BY name, seq`).all()
        : this.db.prepare(`SELECT * FROM image_versions WHERE name = ? ORDER BY seq`).all(name)
    ) as ImageRow[];
    return rows.map(imageFromRow);
  }

  async remove(name: string, version: string): Promise<boolean> {
    return this.db.prepare(`DELETE FROM image_versions WHERE name = ? AND version = ?`).run(name, version).changes > 0;
  }
}
