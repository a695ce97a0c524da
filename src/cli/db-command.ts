import Database from "better-sqlite3";
import type { Command } from "commander";
import pg from "pg";
import { databaseFile } from "../files/state-dir.js";
import { copySqliteToPg } from "../store/copy.js";
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from "../store/pg-migrations.js";
import {
  appliedPgMigrations,
  migratePg,
  openPgStore,
  type PgConnectionSettings,
  pgConnectionConfig,
  redactedUrl,
} from "../store/pg-store.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import { CliError, findConfig, jsonOption, printJson, resolveStateDir, type StateOptions } from "./common.js";

interface DbOptions extends StateOptions {
  url?: string;
  passwordFile?: string;
  json?: boolean;
}

/** The PostgreSQL database a `db` command works on: --url, else the config's `storage`. */
function postgresTarget(options: DbOptions): PgConnectionSettings | undefined {
  if (options.url !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(options.url))
      throw new CliError("USAGE", `--url ${options.url} is not a postgres:// URL`);
    return {
      kind: "postgres",
      url: options.url,
      poolSize: 2,
      ...(options.passwordFile ? { passwordFile: options.passwordFile } : {}),
    };
  }
  const storage = findConfig(options.config)?.config.storage;
  return storage?.kind === "postgres" ? { ...storage, poolSize: 2 } : undefined;
}

function dbOptions(command: Command): Command {
  return command
    .option("--url <postgres-url>", "the PostgreSQL database (default: the config's storage)")
    .option("--password-file <file>", "its password, when the URL has none (default: PGPASSWORD)")
    .option("-c, --config <file>", "config file (its storage: and stateDir)")
    .option("--state-dir <dir>", "state directory (SQLite storage)");
}

async function withPg<T>(storage: PgConnectionSettings, body: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ ...pgConnectionConfig(storage), max: 1 });
  pool.on("error", () => undefined);
  try {
    return await body(pool);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError("STORE", `${redactedUrl(storage.url)}: ${(error as Error).message}`, { cause: error });
  } finally {
    await pool.end();
  }
}

/** `centra-pxe db status|migrate|copy`: the store's schema, and moving a site from SQLite to PostgreSQL. */
export function registerDbCommands(program: Command): void {
  const db = program
    .command("db")
    .description("the database: schema status, migrations, copying a site from SQLite to PostgreSQL");

  jsonOption(
    dbOptions(db.command("status").description("the storage in use, its schema version, pending migrations")),
  ).action(async (options: DbOptions) => {
    const storage = postgresTarget(options);
    if (!storage) {
      const file = databaseFile(resolveStateDir(options));
      // Read only: a status never migrates (the server or `init` does, on open).
      let version: number;
      try {
        const db = new Database(file, { readonly: true, fileMustExist: true });
        version = db.pragma("user_version", { simple: true }) as number;
        db.close();
      } catch (error) {
        throw new CliError("STORE", `${file}: ${(error as Error).message}`, { cause: error });
      }
      if (options.json) printJson({ storage: "sqlite", file, schemaVersion: version });
      else process.stdout.write(`storage  sqlite ${file}\nschema   ${version} (migrated when the server opens it)\n`);
      return;
    }
    const applied = await withPg(storage, (pool) => appliedPgMigrations(pool));
    const done = new Set(applied.map((m) => m.version));
    const pending = PG_MIGRATIONS.filter((m) => !done.has(m.version)).map((m) => m.version);
    const version = Math.max(0, ...done);
    if (options.json) {
      printJson({ storage: "postgres", url: redactedUrl(storage.url), schemaVersion: version, applied, pending });
      return;
    }
    process.stdout.write(`storage  postgres ${redactedUrl(storage.url)}\n`);
    process.stdout.write(
      `schema   ${version} of ${PG_SCHEMA_VERSION}${pending.length ? `; pending: ${pending.join(", ")} (run \`centra-pxe db migrate\`)` : ", up to date"}\n`,
    );
    for (const m of applied) process.stdout.write(`  ${String(m.version).padStart(4)}  applied ${m.appliedAt}\n`);
  });

  dbOptions(
    db.command("migrate").description("apply pending PostgreSQL migrations (serve also applies them on start)"),
  ).action(async (options: DbOptions) => {
    const storage = postgresTarget(options);
    if (!storage)
      throw new CliError(
        "USAGE",
        "storage is sqlite: its file is migrated when opened; give --url or a config with storage: postgres://…",
      );
    const applied = await withPg(storage, (pool) => migratePg(pool));
    process.stdout.write(
      applied.length
        ? `applied migrations ${applied.join(", ")}; schema ${PG_SCHEMA_VERSION}\n`
        : `schema ${PG_SCHEMA_VERSION}, up to date\n`,
    );
  });

  jsonOption(
    db
      .command("copy")
      .description(
        "copy a site's SQLite database into an empty PostgreSQL database: nodes, events, tokens, leases, images",
      )
      .requiredOption("--from <sqlite-file>", "the SQLite file (stateDir/centra-pxe.db); stop its server first")
      .requiredOption("--to <postgres-url>", "the target database, empty (migrated here)")
      .option("--password-file <file>", "the target's password, when the URL has none (default: PGPASSWORD)"),
  ).action(async (options: { from: string; to: string; passwordFile?: string; json?: boolean }) => {
    const storage = postgresTarget({
      url: options.to,
      ...(options.passwordFile ? { passwordFile: options.passwordFile } : {}),
    })!;
    let source: ReturnType<typeof openSqliteStore>;
    try {
      source = openSqliteStore(options.from, { readonly: true });
    } catch (error) {
      throw new CliError("STORE", `${options.from}: ${(error as Error).message}`, { cause: error });
    }
    try {
      const target = await openPgStore(storage).catch((error: unknown) => {
        throw new CliError("STORE", `${redactedUrl(storage.url)}: ${(error as Error).message}`, { cause: error });
      });
      try {
        const report = await copySqliteToPg(source.db, target).catch((error: unknown) => {
          throw new CliError("STORE", (error as Error).message, { cause: error });
        });
        if (options.json) printJson(report);
        else {
          process.stdout.write(`copied ${options.from} to ${redactedUrl(storage.url)}\n`);
          for (const [table, rows] of Object.entries(report.tables))
            process.stdout.write(`  ${table.padEnd(16)} ${rows}\n`);
        }
      } finally {
        await target.close();
      }
    } finally {
      await source.close();
    }
  });
}
