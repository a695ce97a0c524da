import Database from "better-sqlite3";
import { DEFAULT_IMAGE_ARCH, type ImageArch } from "../files/state-dir.js";
import {
  NodeConflict,
  type NodeBmc,
  type ApiTokenRecord,
  type ApiTokenRepository,
  type AuditFilter,
  type AuditRecord,
  type AuditRepository,
  type CallbackTokenRecord,
  type CallbackTokenRepository,
  type ConsumeResult,
  type EventFilter,
  type EventRepository,
  type ImageRepository,
  type ImageVersionRecord,
  type NodeEvent,
  type NodeFilter,
  type NodeRecord,
  type NodeRepository,
  type NodeSource,
  type NodeState,
  type SecretRepository,
  type SightingBatch,
  type Store,
} from "./store.js";
import {
  type ApiTokenRow,
  type AuditRow,
  type CallbackTokenRow,
  type ImageRow,
  apiTokenFromRow,
  auditFromRow,
  callbackTokenFromRow,
  imageFromRow,
  optional,
} from "./rows.js";

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
  // The provisioning inventory (PRODUCT.md §5). Events and callback tokens carry no foreign key:
  // the history of a removed node is kept.
  (db) =>
    db.exec(`
      CREATE TABLE nodes (
        id                 TEXT PRIMARY KEY,
        uuid               TEXT UNIQUE,
        serial             TEXT,
        hostname           TEXT UNIQUE COLLATE NOCASE,
        profile            TEXT,
        ip_address         TEXT UNIQUE,
        image_version      TEXT,
        labels             TEXT NOT NULL DEFAULT '{}',  -- JSON: key → value
        firmware           TEXT,
        state              TEXT NOT NULL,
        source             TEXT NOT NULL,
        provisioning_id    TEXT,
        provision_deadline TEXT,
        state_changed_at   TEXT NOT NULL,
        created_at         TEXT NOT NULL,
        last_seen_at       TEXT,
        seq                INTEGER NOT NULL
      );
      CREATE TABLE node_macs (
        mac      TEXT PRIMARY KEY,
        node_id  TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
        position INTEGER NOT NULL
      );
      CREATE INDEX node_macs_by_node ON node_macs (node_id, position);
      CREATE TABLE node_events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        node_id    TEXT NOT NULL,
        kind       TEXT NOT NULL,
        from_state TEXT,
        to_state   TEXT,
        at         TEXT NOT NULL,
        details    TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX node_events_by_node ON node_events (node_id, seq);
      CREATE TABLE api_tokens (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        hash         TEXT NOT NULL UNIQUE,
        created_at   TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at   TEXT
      );
      CREATE TABLE callback_tokens (
        hash            TEXT PRIMARY KEY,
        node_id         TEXT NOT NULL,
        provisioning_id TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        expires_at      TEXT NOT NULL,
        used_at         TEXT
      );
      CREATE INDEX callback_tokens_by_node ON callback_tokens (node_id);
    `),
  // The key callback tokens are derived from (HMAC of the provisioning attempt), so a refetch of
  // the install script in one attempt gets the same token without the token itself being stored.
  (db) =>
    db.exec(`
      CREATE TABLE secrets (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      CREATE INDEX nodes_by_state ON nodes (state, last_seen_at);
    `),
  // Roles, label scopes and expiry for API tokens (every token made before could do everything, so
  // it stays `admin`), and the audit trail of changes (PRODUCT.md §5).
  (db) =>
    db.exec(`
      ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
      ALTER TABLE api_tokens ADD COLUMN scope TEXT;  -- JSON: label key → value
      ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
      CREATE TABLE audit_log (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        at           TEXT NOT NULL,
        actor_kind   TEXT NOT NULL,
        actor_id     TEXT NOT NULL,
        actor_name   TEXT,
        actor_issuer TEXT,
        action       TEXT NOT NULL,
        target       TEXT,
        summary      TEXT NOT NULL DEFAULT '{}',
        address      TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        status       INTEGER NOT NULL
      );
      CREATE INDEX audit_log_by_time ON audit_log (at);
    `),
  // Issue 13: the node's BMC as JSON (NodeBmc: address, user, the password as a file path or sealed).
  (db) => db.exec(`ALTER TABLE nodes ADD COLUMN bmc TEXT;`),
  // Images per architecture (PRODUCT.md §4): one name holds a build line per arch, each with its
  // own versions, so the key gains `arch`. SQLite cannot change a primary key in place: the table
  // is rebuilt, every version made before becoming x86_64's (where its files already are).
  (db) =>
    db.exec(`
      CREATE TABLE image_versions_by_arch (
        name     TEXT NOT NULL,
        arch     TEXT NOT NULL DEFAULT 'x86_64',
        version  TEXT NOT NULL,
        files    TEXT NOT NULL,  -- JSON: role → { size, sha256 }
        cmdline  TEXT NOT NULL DEFAULT '',
        added_at TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        PRIMARY KEY (name, arch, version)
      );
      INSERT INTO image_versions_by_arch (name, version, files, cmdline, added_at, seq)
        SELECT name, version, files, cmdline, added_at, seq FROM image_versions;
      DROP TABLE image_versions;
      ALTER TABLE image_versions_by_arch RENAME TO image_versions;
    `),
];

export interface SqliteStore extends Store {
  readonly kind: "sqlite";
  /** The open database, for parts that keep their own tables in the same file (DHCP leases). */
  readonly db: Db;
}

export interface OpenStoreOptions {
  /**
   * Open an existing file for reading only (`SQLITE_OPEN_READONLY`): the CLI's read commands, which
   * must neither create a database at a mistyped path nor need write permission on it. Migrations
   * are not run; a file older than this program is refused with what to do.
   */
  readonly?: boolean;
  /** Refuse to create the file when it is missing (every command but `init` and `serve`). */
  mustExist?: boolean;
}

/** Open (creating if needed, unless told otherwise) the embedded store at `file`; `:memory:` for tests. */
export function openSqliteStore(file: string, options: OpenStoreOptions = {}): SqliteStore {
  const readonly = options.readonly === true;
  const db = new Database(file, { readonly, fileMustExist: readonly || options.mustExist === true });
  // WAL lets readers (the CLI, the API) run while the server writes; FULL makes every commit
  // durable before it returns, which the DHCP part relies on before an ACK leaves. The journal
  // mode is stored in the file, so a read-only connection finds it already set.
  if (!readonly) db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  // Write transactions are `.immediate()`: a deferred one that reads first and then writes cannot
  // wait for the lease worker's connection (WAL answers SQLITE_BUSY_SNAPSHOT at once, busy_timeout
  // does not apply); taking the write lock up front makes it wait its turn instead.
  db.pragma("busy_timeout = 5000");
  if (readonly) checkSchemaCurrent(db, file);
  else migrate(db);
  const nodes = new SqliteNodeRepository(db);
  const events = new SqliteEventRepository(db);
  const recordSightings = db.transaction((batch: SightingBatch): NodeEvent[] => {
    const skipped = new Set<string>();
    for (const node of batch.created) {
      try {
        nodes.insert(node);
      } catch (error) {
        if (!(error instanceof NodeConflict) || error.holder === undefined || error.field === "id") throw error;
        // Recorded meanwhile by another writer: this sighting is one of that node (see the contract).
        skipped.add(node.id);
        nodes.touch({ id: error.holder, lastSeenAt: node.lastSeenAt ?? node.createdAt });
      }
    }
    for (const seen of batch.seen) nodes.touch(seen);
    return batch.events.filter((event) => !skipped.has(event.nodeId)).map((event) => events.insert(event));
  });
  return {
    kind: "sqlite",
    db,
    images: new SqliteImageRepository(db),
    nodes,
    events,
    apiTokens: new SqliteApiTokenRepository(db),
    callbackTokens: new SqliteCallbackTokenRepository(db),
    secrets: new SqliteSecretRepository(db),
    audit: new SqliteAuditRepository(db),
    recordSightings: async (batch) => recordSightings.immediate(batch),
    schemaVersion: async () => db.pragma("user_version", { simple: true }) as number,
    close: async () => {
      db.close();
    },
  };
}

/**
 * Statements compiled once per database and SQL text: compiling is most of the cost of a small
 * query, and a burst of sightings runs thousands of them.
 */
const statements = new WeakMap<Db, Map<string, Database.Statement>>();
function prepared(db: Db, text: string): Database.Statement {
  let cache = statements.get(db);
  if (!cache) statements.set(db, (cache = new Map()));
  let statement = cache.get(text);
  if (!statement) cache.set(text, (statement = db.prepare(text)));
  return statement;
}

/** A read-only connection cannot migrate: say so rather than fail later on a missing table. */
function checkSchemaCurrent(db: Db, file: string): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    db.close();
    throw new Error(
      `the database ${file} is at schema ${current}, newer than this program knows (${MIGRATIONS.length}); upgrade centra-pxe`,
    );
  }
  if (current < MIGRATIONS.length) {
    db.close();
    throw new Error(
      `the database ${file} is at schema ${current}, older than this program's ${MIGRATIONS.length}; ` +
        "start `centra-pxe serve` or run `centra-pxe init` once to upgrade it",
    );
  }
}

function migrate(db: Db): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the database is at schema ${current}, newer than this program knows (${MIGRATIONS.length}); upgrade centra-pxe`,
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      MIGRATIONS[version]!(db);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}

class SqliteImageRepository implements ImageRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  async put(record: ImageVersionRecord): Promise<void> {
    this.sql(
      `INSERT INTO image_versions (name, arch, version, files, cmdline, added_at, seq)
         VALUES (@name, @arch, @version, @files, @cmdline, @addedAt, (SELECT COALESCE(MAX(seq), 0) + 1 FROM image_versions))
         ON CONFLICT (name, arch, version) DO UPDATE SET files = excluded.files, cmdline = excluded.cmdline, added_at = excluded.added_at`,
    ).run({ ...record, files: JSON.stringify(record.files) });
  }

  async get(
    name: string,
    version: string,
    arch: ImageArch = DEFAULT_IMAGE_ARCH,
  ): Promise<ImageVersionRecord | undefined> {
    const row = this.sql(`SELECT * FROM image_versions WHERE name = ? AND version = ? AND arch = ?`).get(
      name,
      version,
      arch,
    ) as ImageRow | undefined;
    return row && imageFromRow(row);
  }

  async list(name?: string): Promise<ImageVersionRecord[]> {
    const rows = (
      name === undefined
        ? this.sql(`SELECT * FROM image_versions ORDER BY name, seq`).all()
        : this.sql(`SELECT * FROM image_versions WHERE name = ? ORDER BY seq`).all(name)
    ) as ImageRow[];
    return rows.map(imageFromRow);
  }

  async remove(name: string, version: string, arch: ImageArch = DEFAULT_IMAGE_ARCH): Promise<boolean> {
    return (
      this.sql(`DELETE FROM image_versions WHERE name = ? AND version = ? AND arch = ?`).run(name, version, arch)
        .changes > 0
    );
  }
}

interface NodeRow {
  id: string;
  uuid: string | null;
  serial: string | null;
  hostname: string | null;
  profile: string | null;
  ip_address: string | null;
  image_version: string | null;
  labels: string;
  firmware: string | null;
  state: string;
  source: string;
  provisioning_id: string | null;
  provision_deadline: string | null;
  state_changed_at: string;
  created_at: string;
  last_seen_at: string | null;
  bmc: string | null;
}

/** Copy the columns that are set; an absent optional field stays absent (deepEqual-friendly). */
class SqliteNodeRepository implements NodeRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  private macsOf(id: string): string[] {
    return (this.sql(`SELECT mac FROM node_macs WHERE node_id = ? ORDER BY position`).all(id) as { mac: string }[]).map(
      (r) => r.mac,
    );
  }

  private fromRow(row: NodeRow, macs: string[] = this.macsOf(row.id)): NodeRecord {
    return {
      id: row.id,
      macs,
      ...optional("uuid", row.uuid),
      ...optional("serial", row.serial),
      ...optional("hostname", row.hostname),
      ...optional("profile", row.profile),
      ...optional("ipAddress", row.ip_address),
      ...optional("imageVersion", row.image_version),
      labels: JSON.parse(row.labels) as Record<string, string>,
      ...optional("firmware", row.firmware),
      state: row.state as NodeState,
      source: row.source as NodeSource,
      ...optional("provisioningId", row.provisioning_id),
      ...optional("provisionDeadline", row.provision_deadline),
      stateChangedAt: row.state_changed_at,
      createdAt: row.created_at,
      ...optional("lastSeenAt", row.last_seen_at),
      ...(row.bmc === null ? {} : { bmc: JSON.parse(row.bmc) as NodeBmc }),
    };
  }

  /** The uniqueness rules, checked first so a clash names its field and holder instead of a bare SQLITE_CONSTRAINT. */
  private checkUnique(record: NodeRecord): void {
    for (const mac of record.macs) {
      const holder = this.sql(`SELECT node_id FROM node_macs WHERE mac = ? AND node_id <> ?`).get(mac, record.id) as
        | { node_id: string }
        | undefined;
      if (holder) throw new NodeConflict("macs", mac, holder.node_id);
    }
    const columns = [
      ["uuid", "uuid", record.uuid],
      ["hostname", "hostname", record.hostname],
      ["ipAddress", "ip_address", record.ipAddress],
    ] as const;
    for (const [field, column, value] of columns) {
      if (value === undefined) continue;
      const holder = this.sql(`SELECT id FROM nodes WHERE ${column} = ? AND id <> ?`).get(value, record.id) as
        | { id: string }
        | undefined;
      if (holder) throw new NodeConflict(field, value, holder.id);
    }
  }

  private params(record: NodeRecord) {
    return {
      id: record.id,
      uuid: record.uuid ?? null,
      serial: record.serial ?? null,
      hostname: record.hostname ?? null,
      profile: record.profile ?? null,
      ip_address: record.ipAddress ?? null,
      image_version: record.imageVersion ?? null,
      labels: JSON.stringify(record.labels),
      firmware: record.firmware ?? null,
      state: record.state,
      source: record.source,
      provisioning_id: record.provisioningId ?? null,
      provision_deadline: record.provisionDeadline ?? null,
      state_changed_at: record.stateChangedAt,
      created_at: record.createdAt,
      last_seen_at: record.lastSeenAt ?? null,
      bmc: record.bmc === undefined ? null : JSON.stringify(record.bmc),
    };
  }

  private writeMacs(record: NodeRecord): void {
    this.sql(`DELETE FROM node_macs WHERE node_id = ?`).run(record.id);
    const insert = this.sql(`INSERT INTO node_macs (mac, node_id, position) VALUES (?, ?, ?)`);
    for (const [position, mac] of record.macs.entries()) insert.run(mac, record.id, position);
  }

  async create(record: NodeRecord): Promise<void> {
    this.insert(record); // its own immediate transaction, or a savepoint inside the caller's
  }

  /** `create` inside the caller's transaction. */
  insert(record: NodeRecord): void {
    this.db
      .transaction(() => {
        if (this.sql(`SELECT 1 FROM nodes WHERE id = ?`).get(record.id))
          throw new NodeConflict("id", record.id, record.id);
        this.checkUnique(record);
        this.sql(
          `INSERT INTO nodes (id, uuid, serial, hostname, profile, ip_address, image_version, labels, firmware, state, source,
                              provisioning_id, provision_deadline, state_changed_at, created_at, last_seen_at, bmc, seq)
           VALUES (@id, @uuid, @serial, @hostname, @profile, @ip_address, @image_version, @labels, @firmware, @state, @source,
                   @provisioning_id, @provision_deadline, @state_changed_at, @created_at, @last_seen_at, @bmc,
                   (SELECT COALESCE(MAX(seq), 0) + 1 FROM nodes))`,
        ).run(this.params(record));
        this.writeMacs(record);
      })
      .immediate();
  }

  /** A sighting of a known node: last seen, and its identity as reported (a UUID another node holds is kept out). */
  touch(seen: SightingBatch["seen"][number]): void {
    const uuidFree =
      seen.uuid === undefined || !this.sql(`SELECT 1 FROM nodes WHERE uuid = ? AND id <> ?`).get(seen.uuid, seen.id);
    this.sql(
      `UPDATE nodes SET last_seen_at = @lastSeenAt, firmware = COALESCE(@firmware, firmware),
           uuid = COALESCE(@uuid, uuid), serial = COALESCE(@serial, serial) WHERE id = @id`,
    ).run({
      id: seen.id,
      lastSeenAt: seen.lastSeenAt,
      firmware: seen.firmware ?? null,
      uuid: uuidFree ? (seen.uuid ?? null) : null,
      serial: seen.serial ?? null,
    });
  }

  async replace(record: NodeRecord): Promise<boolean> {
    return this.db
      .transaction(() => {
        if (!this.sql(`SELECT 1 FROM nodes WHERE id = ?`).get(record.id)) return false;
        this.checkUnique(record);
        this.sql(
          `UPDATE nodes SET uuid = @uuid, serial = @serial, hostname = @hostname, profile = @profile, ip_address = @ip_address,
             image_version = @image_version, labels = @labels, firmware = @firmware, state = @state, source = @source,
             provisioning_id = @provisioning_id, provision_deadline = @provision_deadline, state_changed_at = @state_changed_at,
             created_at = @created_at, last_seen_at = @last_seen_at, bmc = @bmc
           WHERE id = @id`,
        ).run(this.params(record));
        this.writeMacs(record);
        return true;
      })
      .immediate();
  }

  async get(id: string): Promise<NodeRecord | undefined> {
    const row = this.sql(`SELECT * FROM nodes WHERE id = ?`).get(id) as NodeRow | undefined;
    return row && this.fromRow(row);
  }

  async findByMac(mac: string): Promise<NodeRecord | undefined> {
    const row = this.sql(`SELECT n.* FROM nodes n JOIN node_macs m ON m.node_id = n.id WHERE m.mac = ?`).get(mac) as
      | NodeRow
      | undefined;
    return row && this.fromRow(row);
  }

  async findByUuid(uuid: string): Promise<NodeRecord | undefined> {
    const row = this.sql(`SELECT * FROM nodes WHERE uuid = ?`).get(uuid) as NodeRow | undefined;
    return row && this.fromRow(row);
  }

  async findBySerial(serial: string): Promise<NodeRecord | undefined> {
    const row = this.sql(`SELECT * FROM nodes WHERE serial = ? ORDER BY seq LIMIT 1`).get(serial) as
      | NodeRow
      | undefined;
    return row && this.fromRow(row);
  }

  async findByHostname(hostname: string): Promise<NodeRecord | undefined> {
    const row = this.sql(`SELECT * FROM nodes WHERE hostname = ?`).get(hostname) as NodeRow | undefined;
    return row && this.fromRow(row);
  }

  async list(filter: NodeFilter = {}): Promise<NodeRecord[]> {
    const where: string[] = [];
    const params: string[] = [];
    if (filter.state !== undefined) {
      where.push("state = ?");
      params.push(filter.state);
    }
    if (filter.profile !== undefined) {
      where.push("profile = ?");
      params.push(filter.profile);
    }
    if (filter.seenBefore !== undefined) {
      where.push("COALESCE(last_seen_at, created_at) < ?");
      params.push(filter.seenBefore);
    }
    for (const [key, value] of Object.entries(filter.labels ?? {})) {
      where.push("json_extract(labels, ?) = ?");
      params.push(`$.${JSON.stringify(key)}`, value);
    }
    const sql = `SELECT * FROM nodes ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY seq`;
    // One read transaction, so the nodes and their MACs come from the same snapshot; all MACs in
    // one query rather than one per node, as the reservation cache lists every node after each change.
    return this.db.transaction(() => {
      const rows = this.sql(sql).all(...params) as NodeRow[];
      const macs = new Map<string, string[]>();
      // A filtered list (the nodes in provisioning, a rack) reads only its own nodes' MACs.
      const macSql = where.length
        ? `SELECT node_id, mac FROM node_macs WHERE node_id IN (SELECT id FROM nodes WHERE ${where.join(" AND ")}) ORDER BY node_id, position`
        : `SELECT node_id, mac FROM node_macs ORDER BY node_id, position`;
      for (const { node_id, mac } of this.sql(macSql).all(...params) as { node_id: string; mac: string }[]) {
        const list = macs.get(node_id);
        if (list) list.push(mac);
        else macs.set(node_id, [mac]);
      }
      return rows.map((row) => this.fromRow(row, macs.get(row.id) ?? []));
    })();
  }

  async countBy(field: "state" | "profile"): Promise<Record<string, number>> {
    const column = field === "state" ? "state" : "profile";
    const rows = this.sql(`SELECT COALESCE(${column}, '') AS value, COUNT(*) AS n FROM nodes GROUP BY 1`).all() as {
      value: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((row) => [row.value, row.n]));
  }

  async remove(id: string): Promise<boolean> {
    return this.sql(`DELETE FROM nodes WHERE id = ?`).run(id).changes > 0;
  }
}

interface EventRow {
  seq: number;
  node_id: string;
  kind: string;
  from_state: string | null;
  to_state: string | null;
  at: string;
  details: string;
}

function eventFromRow(row: EventRow): NodeEvent {
  return {
    seq: row.seq,
    nodeId: row.node_id,
    kind: row.kind,
    ...(row.from_state === null ? {} : { fromState: row.from_state as NodeState }),
    ...(row.to_state === null ? {} : { toState: row.to_state as NodeState }),
    at: row.at,
    details: JSON.parse(row.details) as Record<string, unknown>,
  };
}

class SqliteEventRepository implements EventRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  async append(event: Omit<NodeEvent, "seq">): Promise<NodeEvent> {
    return this.insert(event);
  }

  insert(event: Omit<NodeEvent, "seq">): NodeEvent {
    const result = this.sql(
      `INSERT INTO node_events (node_id, kind, from_state, to_state, at, details) VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(
      event.nodeId,
      event.kind,
      event.fromState ?? null,
      event.toState ?? null,
      event.at,
      JSON.stringify(event.details),
    );
    return { ...event, seq: Number(result.lastInsertRowid) };
  }

  async list(filter: EventFilter = {}): Promise<NodeEvent[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.nodeId !== undefined) {
      where.push("node_id = ?");
      params.push(filter.nodeId);
    }
    if (filter.kind !== undefined) {
      where.push("kind = ?");
      params.push(filter.kind);
    }
    if (filter.afterSeq !== undefined) {
      where.push("seq > ?");
      params.push(filter.afterSeq);
    }
    if (filter.since !== undefined) {
      where.push("at >= ?");
      params.push(filter.since);
    }
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    // After a cursor: the next page. Without one: the newest `limit`, handed back oldest first so a
    // reader can replay them in order.
    const sql =
      filter.limit === undefined
        ? `SELECT * FROM node_events ${clause} ORDER BY seq`
        : filter.afterSeq !== undefined
          ? `SELECT * FROM node_events ${clause} ORDER BY seq LIMIT ?`
          : `SELECT * FROM (SELECT * FROM node_events ${clause} ORDER BY seq DESC LIMIT ?) ORDER BY seq`;
    if (filter.limit !== undefined) params.push(filter.limit);
    return (this.sql(sql).all(...params) as EventRow[]).map(eventFromRow);
  }
}

class SqliteApiTokenRepository implements ApiTokenRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  async create(record: ApiTokenRecord): Promise<void> {
    this.sql(
      `INSERT INTO api_tokens (id, name, hash, role, scope, created_at, expires_at, last_used_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      record.id,
      record.name,
      record.hash,
      record.role,
      record.scope === undefined ? null : JSON.stringify(record.scope),
      record.createdAt,
      record.expiresAt ?? null,
      record.lastUsedAt ?? null,
      record.revokedAt ?? null,
    );
  }

  async findByHash(hash: string): Promise<ApiTokenRecord | undefined> {
    const row = this.sql(`SELECT * FROM api_tokens WHERE hash = ?`).get(hash) as ApiTokenRow | undefined;
    return row && apiTokenFromRow(row);
  }

  async list(): Promise<ApiTokenRecord[]> {
    return (this.sql(`SELECT * FROM api_tokens ORDER BY created_at, id`).all() as ApiTokenRow[]).map(apiTokenFromRow);
  }

  async revoke(id: string, at: string): Promise<boolean> {
    return this.sql(`UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`).run(at, id).changes > 0;
  }

  async touch(id: string, at: string): Promise<void> {
    this.sql(`UPDATE api_tokens SET last_used_at = ? WHERE id = ?`).run(at, id);
  }
}

class SqliteCallbackTokenRepository implements CallbackTokenRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  async issue(record: CallbackTokenRecord): Promise<boolean> {
    return (
      this.sql(
        `INSERT OR IGNORE INTO callback_tokens (hash, node_id, provisioning_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(
        record.hash,
        record.nodeId,
        record.provisioningId,
        record.createdAt,
        record.expiresAt,
        record.usedAt ?? null,
      ).changes > 0
    );
  }

  async find(hash: string): Promise<CallbackTokenRecord | undefined> {
    const row = this.sql(`SELECT * FROM callback_tokens WHERE hash = ?`).get(hash) as CallbackTokenRow | undefined;
    return row && callbackTokenFromRow(row);
  }

  async consume(hash: string, now: string): Promise<ConsumeResult> {
    return this.db
      .transaction((): ConsumeResult => {
        // One conditional UPDATE is the single-use guarantee: a second caller finds used_at set.
        const claimed =
          this.sql(`UPDATE callback_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?`).run(
            now,
            hash,
            now,
          ).changes > 0;
        const row = this.sql(`SELECT * FROM callback_tokens WHERE hash = ?`).get(hash) as CallbackTokenRow | undefined;
        if (!row) return { ok: false, reason: "unknown" };
        const token = callbackTokenFromRow(row);
        if (claimed) return { ok: true, token };
        return { ok: false, reason: row.used_at !== null ? "used" : "expired", token };
      })
      .immediate();
  }

  async revokeForNode(nodeId: string): Promise<void> {
    this.sql(`DELETE FROM callback_tokens WHERE node_id = ? AND used_at IS NULL`).run(nodeId);
  }
}

class SqliteSecretRepository implements SecretRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  async getOrCreate(name: string, create: () => string): Promise<string> {
    // INSERT OR IGNORE then read: of two processes creating it at once, the first write wins for both.
    this.sql(`INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)`).run(name, create());
    return (this.sql(`SELECT value FROM secrets WHERE name = ?`).get(name) as { value: string }).value;
  }
}

class SqliteAuditRepository implements AuditRepository {
  constructor(private readonly db: Db) {}

  private sql(text: string): Database.Statement {
    return prepared(this.db, text);
  }

  async append(record: Omit<AuditRecord, "seq">): Promise<AuditRecord> {
    const result = this.sql(
      `INSERT INTO audit_log (at, actor_kind, actor_id, actor_name, actor_issuer, action, target, summary, address, outcome, status)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      record.at,
      record.actor.kind,
      record.actor.id,
      record.actor.name ?? null,
      record.actor.issuer ?? null,
      record.action,
      record.target ?? null,
      JSON.stringify(record.summary),
      record.address,
      record.outcome,
      record.status,
    );
    return { ...record, seq: Number(result.lastInsertRowid) };
  }

  async list(filter: AuditFilter = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.actor !== undefined) {
      where.push("(actor_id = ? OR actor_name = ?)");
      params.push(filter.actor, filter.actor);
    }
    if (filter.action !== undefined) {
      if (filter.action.endsWith("*")) {
        // A prefix, compared as text: LIKE would read the action's own `%` and `_` as wildcards.
        const prefix = filter.action.slice(0, -1);
        where.push("substr(action, 1, ?) = ?");
        params.push(prefix.length, prefix);
      } else {
        where.push("action = ?");
        params.push(filter.action);
      }
    }
    if (filter.target !== undefined) {
      where.push("target = ?");
      params.push(filter.target);
    }
    if (filter.outcome !== undefined) {
      where.push("outcome = ?");
      params.push(filter.outcome);
    }
    if (filter.since !== undefined) {
      where.push("at >= ?");
      params.push(filter.since);
    }
    if (filter.until !== undefined) {
      where.push("at < ?");
      params.push(filter.until);
    }
    if (filter.beforeSeq !== undefined) {
      where.push("seq < ?");
      params.push(filter.beforeSeq);
    }
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const limit = filter.limit === undefined ? "" : "LIMIT ?";
    if (filter.limit !== undefined) params.push(filter.limit);
    return (this.sql(`SELECT * FROM audit_log ${clause} ORDER BY seq DESC ${limit}`).all(...params) as AuditRow[]).map(
      auditFromRow,
    );
  }
}
