import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import type { PostgresStorageConfig } from "../config/schema.js";
import { DEFAULT_IMAGE_ARCH, type ImageArch } from "../files/state-dir.js";
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from "./pg-migrations.js";
import {
  NodeConflict,
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
  type NodeBmc,
  type NodeRecord,
  type NodeRepository,
  type NodeSource,
  type NodeState,
  type SecretRepository,
  type SightingBatch,
  type Store,
  type StoreChangeFeed,
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

/** Anything that runs a query: the pool, or one client inside a transaction. */
type Queryable = Pick<pg.Pool, "query"> | pg.PoolClient;

/** NOTIFY channels: events carry `instance|seq,seq,…`, leases `instance|address,address,…`. */
export const EVENTS_CHANNEL = "centra_pxe_events";
export const LEASES_CHANNEL = "centra_pxe_leases";
/** NOTIFY payloads are limited to 8000 bytes; stay well below. */
const PAYLOAD_LIMIT = 7_000;

export interface PgStore extends Store {
  readonly kind: "postgres";
  readonly pool: pg.Pool;
  /** This process's name on its connections (`application_name`), so it can skip its own notifications. */
  readonly instance: string;
  /** Run `body` in one transaction on one connection. */
  transaction<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  /** Subscribe to a NOTIFY channel on the store's listening connection (opened on first use). */
  listen(channel: string, onPayload: (payload: string) => void, onReconnect?: () => void): () => void;
  /** Resolves once the listening connection (if one is being opened) has run its LISTENs. */
  listening(): Promise<void>;
  readonly changes: StoreChangeFeed;
}

/** What a connection needs of `storage:` (tests and `db` commands give only a URL). */
export type PgConnectionSettings = Pick<PostgresStorageConfig, "url"> &
  Partial<Pick<PostgresStorageConfig, "passwordFile" | "sslMode" | "caFile" | "poolSize" | "kind">>;

/** `pg` connection settings from the config: the URL, the password from its file or PGPASSWORD, TLS. */
export function pgConnectionConfig(storage: PgConnectionSettings): pg.PoolConfig {
  const config: pg.PoolConfig = { connectionString: storage.url, max: storage.poolSize ?? 10 };
  const url = new URL(storage.url);
  if (url.password === "") {
    const password = storage.passwordFile
      ? readFileSync(storage.passwordFile, "utf8").replace(/\r?\n$/, "")
      : process.env.PGPASSWORD;
    // Into the URL: pg lays the parsed URL over the other settings, its empty password included.
    if (password !== undefined) {
      url.password = encodeURIComponent(password);
      config.connectionString = url.toString();
    }
  }
  const mode = storage.sslMode ?? url.searchParams.get("sslmode") ?? undefined;
  if (mode !== undefined && mode !== "disable" && mode !== "prefer") {
    const ca = storage.caFile ? readFileSync(storage.caFile, "utf8") : undefined;
    // libpq's meaning: `require` encrypts without checking the certificate (unless a CA is given),
    // `verify-ca` checks the chain, `verify-full` the chain and the host name.
    config.ssl = {
      rejectUnauthorized: mode !== "require" || ca !== undefined,
      ...(ca !== undefined ? { ca } : {}),
      ...(mode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
    };
    // The URL's own sslmode would override ours in pg's parser; it was read above.
    url.searchParams.delete("sslmode");
    config.connectionString = url.toString();
  }
  return config;
}

/** The URL without its password, for logs and messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable postgres URL)";
  }
}

export interface OpenPgStoreOptions {
  /** Apply pending migrations (serve, `db migrate`); otherwise a database behind this program is refused. */
  migrate?: boolean;
}

/** Open the shared store; migrates (under an advisory lock, so servers starting together take turns) unless told not to. */
export async function openPgStore(storage: PgConnectionSettings, options: OpenPgStoreOptions = {}): Promise<PgStore> {
  const instance = `centra-pxe-${process.pid}-${randomBytes(3).toString("hex")}`;
  const connection = { ...pgConnectionConfig(storage), application_name: instance };
  const pool = new pg.Pool(connection);
  // An idle connection that breaks (the database restarted) is dropped by the pool; without a
  // listener the error would be an uncaught exception.
  pool.on("error", () => undefined);
  try {
    if (options.migrate ?? true) await migratePg(pool);
    else await checkPgSchemaCurrent(pool);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  return createPgStore(pool, connection, instance);
}

/** Versions applied, newest last. */
export async function appliedPgMigrations(db: Queryable): Promise<{ version: number; appliedAt: string }[]> {
  await db.query(
    `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  const { rows } = await db.query<{ version: number; applied_at: Date }>(
    `SELECT version, applied_at FROM schema_migrations ORDER BY version`,
  );
  return rows.map((r) => ({ version: r.version, appliedAt: r.applied_at.toISOString() }));
}

/** Apply every pending migration, each in its own transaction; returns the versions applied now. */
export async function migratePg(pool: pg.Pool): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    // One migrator at a time across every server on this database (the lock ends with the session's use).
    await client.query(`SELECT pg_advisory_lock(hashtext('centra-pxe schema'))`);
    const done = new Set((await appliedPgMigrations(client)).map((m) => m.version));
    const newest = Math.max(0, ...done);
    if (newest > PG_SCHEMA_VERSION)
      throw new Error(
        `the database is at schema ${newest}, newer than this program knows (${PG_SCHEMA_VERSION}); upgrade centra-pxe`,
      );
    for (const migration of PG_MIGRATIONS) {
      if (done.has(migration.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(migration.sql);
        await client.query(`INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, [
          migration.version,
          migration.name,
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw new Error(`migration ${migration.version} (${migration.name}) failed: ${(error as Error).message}`, {
          cause: error,
        });
      }
      applied.push(migration.version);
    }
  } finally {
    await client.query(`SELECT pg_advisory_unlock(hashtext('centra-pxe schema'))`).catch(() => undefined);
    client.release();
  }
  return applied;
}

async function checkPgSchemaCurrent(pool: pg.Pool): Promise<void> {
  const applied = await appliedPgMigrations(pool);
  const newest = Math.max(0, ...applied.map((m) => m.version));
  if (newest > PG_SCHEMA_VERSION)
    throw new Error(
      `the database is at schema ${newest}, newer than this program knows (${PG_SCHEMA_VERSION}); upgrade centra-pxe`,
    );
  if (newest < PG_SCHEMA_VERSION)
    throw new Error(
      `the database is at schema ${newest}, older than this program's ${PG_SCHEMA_VERSION}; run \`centra-pxe db migrate\` or start \`centra-pxe serve\``,
    );
}

/** Split `items` into `prefix|a,b,…` payloads under the NOTIFY size limit. */
export function notifyPayloads(prefix: string, items: readonly string[]): string[] {
  const payloads: string[] = [];
  let current: string[] = [];
  let length = prefix.length + 1;
  for (const item of items) {
    if (current.length && length + item.length + 1 > PAYLOAD_LIMIT) {
      payloads.push(`${prefix}|${current.join(",")}`);
      current = [];
      length = prefix.length + 1;
    }
    current.push(item);
    length += item.length + 1;
  }
  if (current.length) payloads.push(`${prefix}|${current.join(",")}`);
  return payloads;
}

/** NOTIFY `channel` with `items` inside the caller's transaction: delivered at COMMIT, dropped on ROLLBACK. */
export async function notifyIn(db: Queryable, channel: string, instance: string, items: readonly string[]) {
  const payloads = notifyPayloads(instance, items);
  if (payloads.length) await db.query(`SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, [channel, payloads]);
}

function createPgStore(pool: pg.Pool, connection: pg.ClientConfig, instance: string): PgStore {
  const transaction = async <T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  };
  const listener = new PgListener(connection);
  const nodes = new PgNodeRepository(pool, transaction);
  const events = new PgEventRepository(pool, instance, transaction);
  return {
    kind: "postgres",
    pool,
    instance,
    transaction,
    listen: (channel, onPayload, onReconnect) => listener.listen(channel, onPayload, onReconnect),
    listening: () => listener.ready(),
    changes: {
      onEvents: (listenerFn) => {
        // Another server's events: fetched by the seqs its NOTIFY named (a sequence is not
        // transactional, so "everything after the last seq seen" could skip one committed late).
        let lastSeen = 0;
        const seen = new Set<number>();
        const deliver = (fresh: NodeEvent[]) => {
          const novel = fresh.filter((e) => !seen.has(e.seq));
          for (const e of novel) {
            seen.add(e.seq);
            lastSeen = Math.max(lastSeen, e.seq);
          }
          if (seen.size > 10_000) for (const seq of [...seen].slice(0, 5_000)) seen.delete(seq);
          if (novel.length) listenerFn(novel);
        };
        return listener.listen(
          EVENTS_CHANNEL,
          (payload) => {
            const [origin, list] = splitPayload(payload);
            if (origin === instance) return;
            const seqs = list.map(Number).filter(Number.isSafeInteger);
            events
              .bySeqs(seqs)
              .then(deliver)
              .catch(() => undefined);
          },
          // Notifications sent while the connection was down are lost: read what came meanwhile.
          () => {
            if (lastSeen === 0) return;
            events
              .list({ afterSeq: lastSeen })
              .then(deliver)
              .catch(() => undefined);
          },
        );
      },
    },
    images: new PgImageRepository(pool),
    nodes,
    events,
    apiTokens: new PgApiTokenRepository(pool),
    callbackTokens: new PgCallbackTokenRepository(pool),
    secrets: new PgSecretRepository(pool),
    audit: new PgAuditRepository(pool),
    recordSightings: (batch) =>
      transaction(async (client) => {
        const skipped = new Set<string>();
        for (const node of batch.created) {
          // Another server on the same segment sees the same DISCOVER and may record the machine
          // first: a savepoint per node, so that clash skips this creation, not the batch.
          await client.query("SAVEPOINT sighting");
          try {
            await nodes.insertIn(client, node);
            await client.query("RELEASE SAVEPOINT sighting");
          } catch (error) {
            if (!(error instanceof NodeConflict) && !isUniqueViolation(error)) throw error;
            await client.query("ROLLBACK TO SAVEPOINT sighting");
            const holder = await client.query<{ node_id: string }>(
              `SELECT node_id FROM node_macs WHERE mac = ANY($1::text[]) LIMIT 1`,
              [node.macs],
            );
            if (!holder.rows[0]) throw error;
            skipped.add(node.id);
            await nodes.touchIn(client, { id: holder.rows[0].node_id, lastSeenAt: node.lastSeenAt ?? node.createdAt });
          }
        }
        for (const seen of batch.seen) await nodes.touchIn(client, seen);
        const stored: NodeEvent[] = [];
        for (const event of batch.events)
          if (!skipped.has(event.nodeId)) stored.push(await events.insertIn(client, event));
        await notifyIn(
          client,
          EVENTS_CHANNEL,
          instance,
          stored.map((e) => String(e.seq)),
        );
        return stored;
      }),
    serialized: async (name, body) => {
      const client = await pool.connect();
      try {
        await client.query(`SELECT pg_advisory_lock(hashtext($1))`, [`centra-pxe ${name}`]);
        try {
          return await body();
        } finally {
          await client.query(`SELECT pg_advisory_unlock(hashtext($1))`, [`centra-pxe ${name}`]);
        }
      } finally {
        client.release();
      }
    },
    schemaVersion: async () => Math.max(0, ...(await appliedPgMigrations(pool)).map((m) => m.version)),
    close: async () => {
      await listener.close();
      await pool.end();
    },
  };
}

function splitPayload(payload: string): [string, string[]] {
  const bar = payload.indexOf("|");
  if (bar < 0) return ["", []];
  return [
    payload.slice(0, bar),
    payload
      .slice(bar + 1)
      .split(",")
      .filter(Boolean),
  ];
}
export { splitPayload as splitNotifyPayload };

/**
 * One connection held for LISTEN, reconnected with backoff when it breaks; each reconnect tells
 * its subscribers, whose notifications may have been lost meanwhile, to read what changed.
 */
class PgListener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private readonly subscribers = new Map<string, Set<{ onPayload(p: string): void; onReconnect?(): void }>>();
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly connection: pg.ClientConfig) {}

  listen(channel: string, onPayload: (payload: string) => void, onReconnect?: () => void): () => void {
    const subscriber = { onPayload, ...(onReconnect ? { onReconnect } : {}) };
    let set = this.subscribers.get(channel);
    const fresh = !set;
    if (!set) this.subscribers.set(channel, (set = new Set()));
    set.add(subscriber);
    if (this.client && fresh) this.client.query(`LISTEN ${channel}`).catch(() => undefined);
    else if (!this.client) void this.connect(false);
    return () => set.delete(subscriber);
  }

  /** The connection being opened, if any: what was committed after this resolves is heard. */
  async ready(): Promise<void> {
    await this.connecting;
  }

  private connect(reconnect: boolean): Promise<void> {
    if (this.connecting || this.closed) return this.connecting ?? Promise.resolve();
    this.connecting = (async () => {
      const client = new pg.Client(this.connection);
      client.on("notification", (message) => {
        for (const s of this.subscribers.get(message.channel) ?? []) s.onPayload(message.payload ?? "");
      });
      client.on("error", () => this.broken(client));
      client.on("end", () => this.broken(client));
      try {
        await client.connect();
        for (const channel of this.subscribers.keys()) await client.query(`LISTEN ${channel}`);
        if (this.closed) {
          await client.end();
          return;
        }
        this.client = client;
        if (reconnect) for (const set of this.subscribers.values()) for (const s of set) s.onReconnect?.();
      } catch {
        client.end().catch(() => undefined);
        this.scheduleRetry();
      } finally {
        this.connecting = undefined;
      }
    })();
    return this.connecting;
  }

  private broken(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect(true);
    }, 1_000);
    this.retryTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.connecting;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

type Transaction = <T>(body: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

/** Copy the columns that are set; an absent optional field stays absent (deepEqual-friendly). */
class PgImageRepository implements ImageRepository {
  constructor(private readonly db: pg.Pool) {}

  async put(record: ImageVersionRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO image_versions (name, version, files, cmdline, added_at, arch) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (name, arch, version) DO UPDATE SET files = excluded.files, cmdline = excluded.cmdline, added_at = excluded.added_at`,
      [record.name, record.version, JSON.stringify(record.files), record.cmdline, record.addedAt, record.arch],
    );
  }

  async get(
    name: string,
    version: string,
    arch: ImageArch = DEFAULT_IMAGE_ARCH,
  ): Promise<ImageVersionRecord | undefined> {
    const { rows } = await this.db.query<ImageRow>(
      `SELECT * FROM image_versions WHERE name = $1 AND version = $2 AND arch = $3`,
      [name, version, arch],
    );
    return rows[0] && imageFromRow(rows[0]);
  }

  async list(name?: string): Promise<ImageVersionRecord[]> {
    const { rows } =
      name === undefined
        ? await this.db.query<ImageRow>(`SELECT * FROM image_versions ORDER BY name, seq`)
        : await this.db.query<ImageRow>(`SELECT * FROM image_versions WHERE name = $1 ORDER BY seq`, [name]);
    return rows.map(imageFromRow);
  }

  async remove(name: string, version: string, arch: ImageArch = DEFAULT_IMAGE_ARCH): Promise<boolean> {
    const result = await this.db.query(`DELETE FROM image_versions WHERE name = $1 AND version = $2 AND arch = $3`, [
      name,
      version,
      arch,
    ]);
    return (result.rowCount ?? 0) > 0;
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
  labels: Record<string, string>;
  firmware: string | null;
  state: string;
  source: string;
  provisioning_id: string | null;
  provision_deadline: string | null;
  state_changed_at: string;
  created_at: string;
  last_seen_at: string | null;
  bmc: NodeBmc | null;
  macs: string[] | null;
}

/** A node with its MACs in position order, in one query. */
const NODE_SELECT = `SELECT n.*, ARRAY(SELECT m.mac FROM node_macs m WHERE m.node_id = n.id ORDER BY m.position) AS macs FROM nodes n`;

function nodeFromRow(row: NodeRow): NodeRecord {
  return {
    id: row.id,
    macs: row.macs ?? [],
    ...optional("uuid", row.uuid),
    ...optional("serial", row.serial),
    ...optional("hostname", row.hostname),
    ...optional("profile", row.profile),
    ...optional("ipAddress", row.ip_address),
    ...optional("imageVersion", row.image_version),
    labels: row.labels,
    ...optional("firmware", row.firmware),
    state: row.state as NodeState,
    source: row.source as NodeSource,
    ...optional("provisioningId", row.provisioning_id),
    ...optional("provisionDeadline", row.provision_deadline),
    stateChangedAt: row.state_changed_at,
    createdAt: row.created_at,
    ...optional("lastSeenAt", row.last_seen_at),
    ...(row.bmc === null ? {} : { bmc: row.bmc }),
  };
}

/** Which field a unique index guards, to name a clash the checks did not see coming (a concurrent writer). */
const CONSTRAINT_FIELDS: Record<string, NodeConflict["field"]> = {
  node_macs_pkey: "macs",
  nodes_uuid_key: "uuid",
  nodes_hostname_key: "hostname",
  nodes_ip_address_key: "ipAddress",
  nodes_pkey: "id",
};

function isUniqueViolation(error: unknown): error is { code: string; constraint?: string } {
  return typeof error === "object" && error !== null && (error as { code?: string }).code === "23505";
}

function nodeParams(record: NodeRecord): unknown[] {
  return [
    record.id,
    record.uuid ?? null,
    record.serial ?? null,
    record.hostname ?? null,
    record.profile ?? null,
    record.ipAddress ?? null,
    record.imageVersion ?? null,
    JSON.stringify(record.labels),
    record.firmware ?? null,
    record.state,
    record.source,
    record.provisioningId ?? null,
    record.provisionDeadline ?? null,
    record.stateChangedAt,
    record.createdAt,
    record.lastSeenAt ?? null,
    record.bmc === undefined ? null : JSON.stringify(record.bmc),
  ];
}

class PgNodeRepository implements NodeRepository {
  constructor(
    private readonly db: pg.Pool,
    private readonly transaction: Transaction,
  ) {}

  /** The uniqueness rules, checked first so a clash names its field and holder. */
  private async checkUnique(db: Queryable, record: NodeRecord): Promise<void> {
    if (record.macs.length) {
      const { rows } = await db.query<{ mac: string; node_id: string }>(
        `SELECT mac, node_id FROM node_macs WHERE mac = ANY($1::text[]) AND node_id <> $2`,
        [record.macs, record.id],
      );
      const first = record.macs.find((mac) => rows.some((r) => r.mac === mac));
      if (first !== undefined) throw new NodeConflict("macs", first, rows.find((r) => r.mac === first)!.node_id);
    }
    const checks = [
      ["uuid", "uuid = $1", record.uuid],
      ["hostname", "lower(hostname) = lower($1)", record.hostname],
      ["ipAddress", "ip_address = $1", record.ipAddress],
    ] as const;
    for (const [field, where, value] of checks) {
      if (value === undefined) continue;
      const { rows } = await db.query<{ id: string }>(`SELECT id FROM nodes WHERE ${where} AND id <> $2`, [
        value,
        record.id,
      ]);
      if (rows[0]) throw new NodeConflict(field, value, rows[0].id);
    }
  }

  /** A unique violation another writer caused between our check and our write, named like the checks name one. */
  private async conflictFrom(error: { constraint?: string }, record: NodeRecord): Promise<NodeConflict | undefined> {
    const field = CONSTRAINT_FIELDS[error.constraint ?? ""];
    if (!field) return undefined;
    try {
      await this.checkUnique(this.db, record);
    } catch (conflict) {
      if (conflict instanceof NodeConflict) return conflict;
    }
    const value = field === "macs" ? (record.macs[0] ?? "") : String(record[field] ?? record.id);
    return new NodeConflict(field, value, undefined);
  }

  private async writeMacs(db: Queryable, record: NodeRecord): Promise<void> {
    await db.query(`DELETE FROM node_macs WHERE node_id = $1`, [record.id]);
    if (record.macs.length)
      await db.query(
        `INSERT INTO node_macs (mac, node_id, position) SELECT mac, $2, pos - 1 FROM unnest($1::text[]) WITH ORDINALITY AS t(mac, pos)`,
        [record.macs, record.id],
      );
  }

  async create(record: NodeRecord): Promise<void> {
    try {
      await this.transaction((client) => this.insertIn(client, record));
    } catch (error) {
      if (isUniqueViolation(error)) throw (await this.conflictFrom(error, record)) ?? error;
      throw error;
    }
  }

  /** `create` inside the caller's transaction. */
  async insertIn(db: Queryable, record: NodeRecord): Promise<void> {
    const { rows } = await db.query(`SELECT 1 FROM nodes WHERE id = $1`, [record.id]);
    if (rows.length) throw new NodeConflict("id", record.id, record.id);
    await this.checkUnique(db, record);
    await db.query(
      `INSERT INTO nodes (id, uuid, serial, hostname, profile, ip_address, image_version, labels, firmware, state, source,
                          provisioning_id, provision_deadline, state_changed_at, created_at, last_seen_at, bmc)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
      nodeParams(record),
    );
    await this.writeMacs(db, record);
  }

  /** A sighting of a known node: last seen, and its identity as reported (a UUID another node holds is kept out). */
  async touchIn(db: Queryable, seen: SightingBatch["seen"][number]): Promise<void> {
    await db.query(
      `UPDATE nodes SET last_seen_at = $2, firmware = COALESCE($3, firmware),
         uuid = CASE WHEN $4::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nodes o WHERE o.uuid = $4 AND o.id <> $1)
                     THEN $4 ELSE uuid END,
         serial = COALESCE($5, serial)
       WHERE id = $1`,
      [seen.id, seen.lastSeenAt, seen.firmware ?? null, seen.uuid ?? null, seen.serial ?? null],
    );
  }

  async replace(record: NodeRecord): Promise<boolean> {
    try {
      return await this.transaction(async (client) => {
        // Lock the row: two servers replacing one node take turns.
        const { rows } = await client.query(`SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE`, [record.id]);
        if (!rows.length) return false;
        await this.checkUnique(client, record);
        await client.query(
          `UPDATE nodes SET uuid = $2, serial = $3, hostname = $4, profile = $5, ip_address = $6, image_version = $7,
             labels = $8, firmware = $9, state = $10, source = $11, provisioning_id = $12, provision_deadline = $13,
             state_changed_at = $14, created_at = $15, last_seen_at = $16, bmc = $17
           WHERE id = $1`,
          nodeParams(record),
        );
        await this.writeMacs(client, record);
        return true;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw (await this.conflictFrom(error, record)) ?? error;
      throw error;
    }
  }

  private async one(where: string, value: string): Promise<NodeRecord | undefined> {
    const { rows } = await this.db.query<NodeRow>(`${NODE_SELECT} WHERE ${where} ORDER BY n.seq LIMIT 1`, [value]);
    return rows[0] && nodeFromRow(rows[0]);
  }

  get(id: string) {
    return this.one("n.id = $1", id);
  }

  findByMac(mac: string) {
    return this.one("n.id = (SELECT node_id FROM node_macs WHERE mac = $1)", mac);
  }

  findByUuid(uuid: string) {
    return this.one("n.uuid = $1", uuid);
  }

  findBySerial(serial: string) {
    return this.one("n.serial = $1", serial);
  }

  findByHostname(hostname: string) {
    return this.one("lower(n.hostname) = lower($1)", hostname);
  }

  async list(filter: NodeFilter = {}): Promise<NodeRecord[]> {
    const where: string[] = [];
    const params: string[] = [];
    const param = (value: string) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.state !== undefined) where.push(`n.state = ${param(filter.state)}`);
    if (filter.profile !== undefined) where.push(`n.profile = ${param(filter.profile)}`);
    if (filter.seenBefore !== undefined)
      where.push(`COALESCE(n.last_seen_at, n.created_at) < ${param(filter.seenBefore)}`);
    for (const [key, value] of Object.entries(filter.labels ?? {}))
      where.push(`n.labels ->> ${param(key)} = ${param(value)}`);
    const { rows } = await this.db.query<NodeRow>(
      `${NODE_SELECT} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY n.seq`,
      params,
    );
    return rows.map(nodeFromRow);
  }

  async remove(id: string): Promise<boolean> {
    return ((await this.db.query(`DELETE FROM nodes WHERE id = $1`, [id])).rowCount ?? 0) > 0;
  }
}

interface EventRow {
  seq: string;
  node_id: string;
  kind: string;
  from_state: string | null;
  to_state: string | null;
  at: string;
  details: string;
}

function eventFromRow(row: EventRow): NodeEvent {
  return {
    seq: Number(row.seq),
    nodeId: row.node_id,
    kind: row.kind,
    ...(row.from_state === null ? {} : { fromState: row.from_state as NodeState }),
    ...(row.to_state === null ? {} : { toState: row.to_state as NodeState }),
    at: row.at,
    details: JSON.parse(row.details) as Record<string, unknown>,
  };
}

class PgEventRepository implements EventRepository {
  constructor(
    private readonly db: pg.Pool,
    private readonly instance: string,
    private readonly transaction: Transaction,
  ) {}

  append(event: Omit<NodeEvent, "seq">): Promise<NodeEvent> {
    // With its NOTIFY in one transaction: the other servers hear of it exactly when it is committed.
    return this.transaction(async (client) => {
      const stored = await this.insertIn(client, event);
      await notifyIn(client, EVENTS_CHANNEL, this.instance, [String(stored.seq)]);
      return stored;
    });
  }

  async insertIn(db: Queryable, event: Omit<NodeEvent, "seq">): Promise<NodeEvent> {
    const { rows } = await db.query<{ seq: string }>(
      `INSERT INTO node_events (node_id, kind, from_state, to_state, at, details) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`,
      [
        event.nodeId,
        event.kind,
        event.fromState ?? null,
        event.toState ?? null,
        event.at,
        JSON.stringify(event.details),
      ],
    );
    return { ...event, seq: Number(rows[0]!.seq) };
  }

  async bySeqs(seqs: readonly number[]): Promise<NodeEvent[]> {
    if (!seqs.length) return [];
    const { rows } = await this.db.query<EventRow>(
      `SELECT * FROM node_events WHERE seq = ANY($1::bigint[]) ORDER BY seq`,
      [seqs],
    );
    return rows.map(eventFromRow);
  }

  async list(filter: EventFilter = {}): Promise<NodeEvent[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const param = (value: string | number) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.nodeId !== undefined) where.push(`node_id = ${param(filter.nodeId)}`);
    if (filter.kind !== undefined) where.push(`kind = ${param(filter.kind)}`);
    if (filter.afterSeq !== undefined) where.push(`seq > ${param(filter.afterSeq)}`);
    if (filter.since !== undefined) where.push(`at >= ${param(filter.since)}`);
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    // After a cursor: the next page. Without one: the newest `limit`, handed back oldest first.
    const sql =
      filter.limit === undefined
        ? `SELECT * FROM node_events ${clause} ORDER BY seq`
        : filter.afterSeq !== undefined
          ? `SELECT * FROM node_events ${clause} ORDER BY seq LIMIT ${param(filter.limit)}`
          : `SELECT * FROM (SELECT * FROM node_events ${clause} ORDER BY seq DESC LIMIT ${param(filter.limit)}) AS newest ORDER BY seq`;
    const { rows } = await this.db.query<EventRow>(sql, params);
    return rows.map(eventFromRow);
  }
}

class PgApiTokenRepository implements ApiTokenRepository {
  constructor(private readonly db: pg.Pool) {}

  async create(record: ApiTokenRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO api_tokens (id, name, hash, role, scope, created_at, expires_at, last_used_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        record.id,
        record.name,
        record.hash,
        record.role,
        record.scope === undefined ? null : JSON.stringify(record.scope),
        record.createdAt,
        record.expiresAt ?? null,
        record.lastUsedAt ?? null,
        record.revokedAt ?? null,
      ],
    );
  }

  async findByHash(hash: string): Promise<ApiTokenRecord | undefined> {
    const { rows } = await this.db.query<ApiTokenRow>(`SELECT * FROM api_tokens WHERE hash = $1`, [hash]);
    return rows[0] && apiTokenFromRow(rows[0]);
  }

  async list(): Promise<ApiTokenRecord[]> {
    const { rows } = await this.db.query<ApiTokenRow>(`SELECT * FROM api_tokens ORDER BY created_at, id`);
    return rows.map(apiTokenFromRow);
  }

  async revoke(id: string, at: string): Promise<boolean> {
    const result = await this.db.query(`UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [
      at,
      id,
    ]);
    return (result.rowCount ?? 0) > 0;
  }

  async touch(id: string, at: string): Promise<void> {
    await this.db.query(`UPDATE api_tokens SET last_used_at = $1 WHERE id = $2`, [at, id]);
  }
}

class PgCallbackTokenRepository implements CallbackTokenRepository {
  constructor(private readonly db: pg.Pool) {}

  async issue(record: CallbackTokenRecord): Promise<boolean> {
    const result = await this.db.query(
      `INSERT INTO callback_tokens (hash, node_id, provisioning_id, created_at, expires_at, used_at)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING`,
      [record.hash, record.nodeId, record.provisioningId, record.createdAt, record.expiresAt, record.usedAt ?? null],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async find(hash: string): Promise<CallbackTokenRecord | undefined> {
    const { rows } = await this.db.query<CallbackTokenRow>(`SELECT * FROM callback_tokens WHERE hash = $1`, [hash]);
    return rows[0] && callbackTokenFromRow(rows[0]);
  }

  async consume(hash: string, now: string): Promise<ConsumeResult> {
    // One conditional UPDATE is the single-use guarantee across servers: the row lock makes a second
    // caller wait, then find used_at set.
    const claimed = await this.db.query<CallbackTokenRow>(
      `UPDATE callback_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING *`,
      [now, hash],
    );
    if (claimed.rows[0]) return { ok: true, token: callbackTokenFromRow(claimed.rows[0]) };
    const row = (await this.db.query<CallbackTokenRow>(`SELECT * FROM callback_tokens WHERE hash = $1`, [hash]))
      .rows[0];
    if (!row) return { ok: false, reason: "unknown" };
    return { ok: false, reason: row.used_at !== null ? "used" : "expired", token: callbackTokenFromRow(row) };
  }

  async revokeForNode(nodeId: string): Promise<void> {
    await this.db.query(`DELETE FROM callback_tokens WHERE node_id = $1 AND used_at IS NULL`, [nodeId]);
  }
}

class PgSecretRepository implements SecretRepository {
  constructor(private readonly db: pg.Pool) {}

  async getOrCreate(name: string, create: () => string): Promise<string> {
    // Of two servers creating it at once, the first commit wins for both.
    await this.db.query(`INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, [
      name,
      create(),
    ]);
    const { rows } = await this.db.query<{ value: string }>(`SELECT value FROM secrets WHERE name = $1`, [name]);
    return rows[0]!.value;
  }
}

class PgAuditRepository implements AuditRepository {
  constructor(private readonly db: pg.Pool) {}

  async append(record: Omit<AuditRecord, "seq">): Promise<AuditRecord> {
    const { rows } = await this.db.query<{ seq: string }>(
      `INSERT INTO audit_log (at, actor_kind, actor_id, actor_name, actor_issuer, action, target, summary, address, outcome, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`,
      [
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
      ],
    );
    return { ...record, seq: Number(rows[0]!.seq) };
  }

  async list(filter: AuditFilter = {}): Promise<AuditRecord[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const param = (value: string | number) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (filter.actor !== undefined) {
      const actor = param(filter.actor);
      where.push(`(actor_id = ${actor} OR actor_name = ${actor})`);
    }
    if (filter.action !== undefined) {
      // A prefix, compared as text: LIKE would read the action's own `%` and `_` as wildcards.
      if (filter.action.endsWith("*")) {
        const prefix = filter.action.slice(0, -1);
        where.push(`substr(action, 1, ${param(prefix.length)}) = ${param(prefix)}`);
      } else where.push(`action = ${param(filter.action)}`);
    }
    if (filter.target !== undefined) where.push(`target = ${param(filter.target)}`);
    if (filter.outcome !== undefined) where.push(`outcome = ${param(filter.outcome)}`);
    if (filter.since !== undefined) where.push(`at >= ${param(filter.since)}`);
    if (filter.until !== undefined) where.push(`at < ${param(filter.until)}`);
    if (filter.beforeSeq !== undefined) where.push(`seq < ${param(filter.beforeSeq)}`);
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const limit = filter.limit === undefined ? "" : `LIMIT ${param(filter.limit)}`;
    const { rows } = await this.db.query<AuditRow>(
      `SELECT * FROM audit_log ${clause} ORDER BY seq DESC ${limit}`,
      params,
    );
    return rows.map(auditFromRow);
  }
}
