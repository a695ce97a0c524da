import type Database from "better-sqlite3";
import type { PgStore } from "./pg-store.js";

/**
 * Tables in dependency order (a node before its MACs). Tables both databases hold beyond these
 * (added by later migrations) are copied after them.
 */
const ORDER = [
  "image_versions",
  "nodes",
  "node_macs",
  "node_events",
  "api_tokens",
  "callback_tokens",
  "secrets",
  "leases",
  "audit_log",
];
/** Rows per INSERT: bounded memory and statement size on a large site. */
const CHUNK = 2_000;

export interface CopyReport {
  /** Rows copied per table. */
  tables: Record<string, number>;
}

/**
 * `db copy`: every row of a site's SQLite file into an empty PostgreSQL database, in one
 * transaction (all or nothing), ids and seqs as they were, so event cursors (`Last-Event-ID`),
 * callback tokens and leases stay valid across the move. The identity sequences are moved past the
 * copied seqs, so the next event continues the count. Columns are those both schemas have; a
 * PostgreSQL-only column gets its default.
 */
export async function copySqliteToPg(source: Database.Database, target: PgStore): Promise<CopyReport> {
  const sqliteTables = new Set(
    (
      source.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as {
        name: string;
      }[]
    ).map((r) => r.name),
  );
  return target.transaction(async (client) => {
    const { rows: columns } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
      `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()`,
    );
    const pgColumns = new Map<string, Map<string, string>>();
    for (const c of columns) {
      let table = pgColumns.get(c.table_name);
      if (!table) pgColumns.set(c.table_name, (table = new Map()));
      table.set(c.column_name, c.data_type);
    }
    const shared = [...sqliteTables].filter((t) => pgColumns.has(t) && t !== "schema_migrations");
    const tables = [...ORDER.filter((t) => shared.includes(t)), ...shared.filter((t) => !ORDER.includes(t)).sort()];
    for (const table of tables) {
      const { rows } = await client.query(`SELECT 1 FROM ${table} LIMIT 1`);
      if (rows.length)
        throw new Error(
          `the target database already holds ${table}; db copy fills an empty database only (create a new one, or drop it first)`,
        );
    }
    const report: CopyReport = { tables: {} };
    for (const table of tables) {
      const target = pgColumns.get(table)!;
      const names = (source.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[])
        .map((r) => r.name)
        .filter((name) => target.has(name));
      const json = names.filter((name) => target.get(name) === "jsonb");
      const list = names.map((n) => `"${n}"`).join(", ");
      const orderBy = names.includes("seq") ? " ORDER BY seq" : "";
      let copied = 0;
      let chunk: Record<string, unknown>[] = [];
      const flush = async () => {
        if (!chunk.length) return;
        await client.query(
          `INSERT INTO ${table} (${list}) SELECT ${list} FROM json_populate_recordset(NULL::${table}, $1::json)`,
          [JSON.stringify(chunk)],
        );
        copied += chunk.length;
        chunk = [];
      };
      for (const row of source.prepare(`SELECT ${list} FROM ${table}${orderBy}`).iterate() as Iterable<
        Record<string, unknown>
      >) {
        // SQLite keeps JSON as text; a jsonb column wants the value, not a string holding it.
        for (const name of json) if (typeof row[name] === "string") row[name] = JSON.parse(row[name] as string);
        chunk.push(row);
        if (chunk.length >= CHUNK) await flush();
      }
      await flush();
      report.tables[table] = copied;
      if (names.includes("seq") && target.has("seq"))
        await client.query(
          `SELECT setval(pg_get_serial_sequence('${table}', 'seq'), GREATEST((SELECT MAX(seq) FROM ${table}), 1), (SELECT MAX(seq) FROM ${table}) IS NOT NULL)`,
        );
    }
    return report;
  });
}
