import type { Command } from "commander";
import { constants } from "node:fs";
import { access, copyFile, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { findConfigFile, loadConfigFile, parseConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { serverHttpUrl } from "../config/server-url.js";
import { CentraError } from "../errors.js";
import { databaseFile, stateDirProblem } from "../files/state-dir.js";
import { type ConfiguredStore, openConfiguredStore } from "../store/open.js";
import { redactedUrl } from "../store/pg-store.js";
import { openSqliteStore, type SqliteStore } from "../store/sqlite-store.js";

/**
 * What the commands share: the same flag names everywhere (`-c/--config`, `--state-dir`, `--url`,
 * `--token`, `--json`), where the state directory and the server are found, and failures told in
 * our words with the path they concern.
 */

/** A failure the operator can act on; `main.ts` prints the message and exits with 1. */
export class CliError extends CentraError {
  readonly exitCode = 1;
}

export interface StateOptions {
  config?: string;
  stateDir?: string;
}

/** Adds the two flags every command on the state directory takes, with the same words everywhere. */
export function stateOptions(command: Command): Command {
  return command
    .option("-c, --config <file>", "config file (for stateDir; default: $CENTRA_PXE_CONFIG, ./centra-pxe.yaml, …)")
    .option("--state-dir <dir>", "state directory (default: $CENTRA_PXE_STATE_DIR, else the config's stateDir)");
}

export function jsonOption(command: Command, what = "print JSON"): Command {
  return command.option("--json", what);
}

/** A value from the environment; an empty variable counts as unset (`CENTRA_PXE_URL= centra-pxe …`). */
function fromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

/** The config file named by --config, $CENTRA_PXE_CONFIG or found in the usual places (PRODUCT.md §1), if any. */
export function findConfig(
  explicit: string | undefined,
  env = process.env,
): { config: Config; file: string } | undefined {
  const file = findConfigFile(explicit, { ...env, CENTRA_PXE_CONFIG: fromEnv(env, "CENTRA_PXE_CONFIG") });
  return file ? { config: loadConfigFile(file), file } : undefined;
}

/** --state-dir, else $CENTRA_PXE_STATE_DIR, else the config's stateDir (the default one without a config). */
export function resolveStateDir(options: StateOptions, env = process.env): string {
  return (
    options.stateDir ??
    fromEnv(env, "CENTRA_PXE_STATE_DIR") ??
    findConfig(options.config, env)?.config.stateDir ??
    parseConfig("{}", "<defaults>").stateDir
  );
}

/**
 * The store of an initialised state directory. Nothing is created: a mistyped path is reported
 * with the path looked at, not answered from a new empty database. `read` opens the file read-only,
 * so a read needs no write permission and can never change the file.
 */
export async function openStateStore(
  options: StateOptions,
  mode: "read" | "write",
): Promise<{ stateDir: string; store: ConfiguredStore }> {
  const stateDir = resolveStateDir(options);
  const problem = await stateDirProblem(stateDir);
  if (problem) throw new CliError("STATE_DIR", problem);
  // `storage: postgres://…`: the inventory is the shared database's, the files stay this host's.
  const configured = findConfig(options.config)?.config;
  if (configured?.storage.kind === "postgres") {
    try {
      return { stateDir, store: await openConfiguredStore(configured, { readonly: mode === "read" }) };
    } catch (error) {
      throw new CliError(
        "STORE",
        `cannot open the database ${redactedUrl(configured.storage.url)}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  const file = databaseFile(stateDir);
  try {
    return { stateDir, store: openSqliteStore(file, { readonly: mode === "read", mustExist: true }) };
  } catch (error) {
    const code = String((error as { code?: unknown }).code);
    const cannotWrite = await writeProblem(file);
    // Only the index beside the file is missing: read a snapshot (below) rather than refuse a read.
    if (mode === "read" && cannotWrite && (code === "SQLITE_READONLY_DIRECTORY" || code === "SQLITE_CANTOPEN"))
      return { stateDir, store: await openSnapshot(file) };
    throw explainStoreError(error, file, cannotWrite);
  }
}

/**
 * Why this process cannot write the database or its directory (SQLite's own errors do not say):
 * access(2) answers EROFS for a read-only mount and EACCES for missing permission.
 */
async function writeProblem(file: string): Promise<string | undefined> {
  for (const path of [dirname(file), file]) {
    try {
      await access(path, constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EROFS")
        return "the file system is mounted read-only; remount it read-write or use another --state-dir";
      if (code === "EACCES" || code === "EPERM") return `permission denied; ${RUN_AS}`;
    }
  }
  return undefined;
}

/**
 * A WAL database can be read only with its `-shm` index beside it. While the server runs the index
 * exists and any user who can read the file can read the database; when it is stopped the index is
 * gone, and a user who cannot write the state directory (an operator reading the service user's
 * state) cannot create it. Such a reader gets a private copy: with no server running there is no
 * `-wal` to miss, and the copy is refused if one appears or the file changes while it is taken.
 */
async function openSnapshot(file: string): Promise<SqliteStore> {
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );
  if (await exists(`${file}-wal`))
    throw new CliError(
      "PERMISSION",
      `cannot read ${file} while the server writes it: this user cannot open ${file}-shm; ${RUN_AS}`,
    );
  const before = await stat(file);
  const dir = await mkdtemp(join(tmpdir(), "centra-pxe-read-"));
  try {
    const copy = join(dir, basename(file));
    await copyFile(file, copy);
    const after = await stat(file);
    if ((await exists(`${file}-wal`)) || after.mtimeMs !== before.mtimeMs || after.size !== before.size)
      throw new CliError("BUSY", `${file} changed while it was read (the server started?); try again`);
    const store = openSqliteStore(copy, { readonly: true, mustExist: true });
    return {
      ...store,
      close: async () => {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw explainStoreError(error, file);
  }
}

/** Run `body` on the store, closing it after; store failures name the file. */
export async function withStateStore<T>(
  options: StateOptions,
  mode: "read" | "write",
  body: (store: ConfiguredStore, stateDir: string) => Promise<T>,
): Promise<T> {
  const { stateDir, store } = await openStateStore(options, mode);
  try {
    return await body(store, stateDir);
  } catch (error) {
    const file = databaseFile(stateDir);
    throw explainStoreError(error, file, await writeProblem(file));
  } finally {
    await store.close();
  }
}

const RUN_AS = "run as the service user or root";

/**
 * SQLite's failures (no path in them) told with the database file and what to do; `cannotWrite`
 * is why this process cannot write there, when that is known.
 */
export function explainStoreError(error: unknown, file: string, cannotWrite?: string): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return explainFsError(error);
  const says = (message: string) => new CliError("STORE", message, { cause: error });
  if (code.startsWith("SQLITE_READONLY"))
    return says(`cannot write ${file}: ${cannotWrite ?? `the database is read-only to this process; ${RUN_AS}`}`);
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_PERM") || code.startsWith("SQLITE_AUTH"))
    return says(
      cannotWrite
        ? `cannot write ${file}: ${cannotWrite}`
        : `cannot open ${file}: ${(error as Error).message}; ${RUN_AS}`,
    );
  if (code.startsWith("SQLITE_BUSY")) return says(`${file} stayed locked by another writer for 5 s; try again`);
  return says(`${file}: ${(error as Error).message}`);
}

const WRITING_CALLS = new Set([
  "mkdir",
  "mkdtemp",
  "rename",
  "unlink",
  "rmdir",
  "symlink",
  "copyfile",
  "write",
  "link",
  "chmod",
]);

/** Node's file-system errors (`EACCES: permission denied, open '…'`) in our words, with the path and the fix. */
export function explainFsError(error: unknown): unknown {
  const e = error as NodeJS.ErrnoException;
  if (!(error instanceof Error) || typeof e.code !== "string" || typeof e.path !== "string") return error;
  const path = e.path;
  const verb = WRITING_CALLS.has(e.syscall ?? "") ? "write" : e.syscall === "open" ? "open" : "read";
  const says = (message: string) => new CliError(e.code!, message, { cause: error });
  switch (e.code) {
    case "EACCES":
    case "EPERM":
      return says(`cannot ${verb} ${path}: permission denied; ${RUN_AS}`);
    case "EROFS":
      return says(`cannot write ${path}: the file system is mounted read-only`);
    case "EEXIST":
      return says(`cannot create ${path}: it exists already${e.syscall === "mkdir" ? " and is not a directory" : ""}`);
    case "ENOTDIR":
      return says(`${path}: a part of the path is a file, not a directory`);
    case "ENOENT":
      return says(`${path}: no such file or directory`);
    case "ENOSPC":
      return says(`cannot write ${path}: no space left on the device`);
    default:
      return error;
  }
}

export interface ServerOptions {
  url?: string;
  config?: string;
}

/** Where the server's URL came from, for a message that says which setting to fix. */
export interface ServerLocation {
  base: string;
  from: string;
}

/**
 * The server a client command talks to: --url, else $CENTRA_PXE_URL, else the config's HTTP address
 * (`http://serverAddress[:http.port]`, where HTTP listens by default), else http://127.0.0.1.
 */
export function locateServer(options: ServerOptions, env = process.env): ServerLocation {
  if (options.url !== undefined) return { base: parseServerUrl(options.url, "--url"), from: "--url" };
  const fromVariable = fromEnv(env, "CENTRA_PXE_URL");
  if (fromVariable !== undefined)
    return { base: parseServerUrl(fromVariable, "CENTRA_PXE_URL"), from: "CENTRA_PXE_URL" };
  const found = findConfig(options.config, env);
  if (found) return { base: serverHttpUrl(found.config), from: `${found.file} (serverAddress, http.port)` };
  return { base: "http://127.0.0.1", from: "the default (no --url, CENTRA_PXE_URL or config file)" };
}

/** `http://HOST[:PORT]` with an optional `/api/v1`; anything else is refused before a request is tried. */
export function parseServerUrl(text: string, source: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError("BAD_URL", `${source}: not a URL: ${JSON.stringify(text)} (expected http://HOST[:PORT])`);
  }
  // "10.0.100.10:8080" parses as scheme "10.0.100.10:"; "localhost:80" as scheme "localhost:".
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new CliError("BAD_URL", `${source}: not a URL: ${JSON.stringify(text)} (expected http://HOST[:PORT])`);
  return `${url.origin}${url.pathname.replace(/\/+$/, "").replace(/\/api\/v1$/, "")}`;
}

/**
 * Why a fetch failed, in words. Node's fetch refuses the Fetch standard's "bad ports" (10080, 6000,
 * 69, …: ports of other protocols a browser must not be tricked into talking to) before any packet
 * leaves, so "is the server running?" would send the operator looking in the wrong place.
 */
export function explainFetchFailure(error: unknown, base: string, from: string): string {
  const inner = (error as { cause?: { code?: string; message?: string } }).cause;
  if (inner?.message === "bad port") {
    const port = new URL(base).port;
    return (
      `cannot talk to ${base}: Node's fetch refuses port ${port} (a "bad port" of the Fetch standard, blocked as ` +
      "unsafe), so no client built on it can reach a server there; serve HTTP on another port (http.port)"
    );
  }
  const cause = inner?.code ?? inner?.message ?? (error as Error).message;
  return `cannot reach the server at ${base} (${cause}; the URL came from ${from}); is \`centra-pxe serve\` running? Set --url, CENTRA_PXE_URL or --config`;
}

/** One JSON document on stdout, so `| jq` always works. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
