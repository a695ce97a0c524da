import type { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { CentraError } from "../errors.js";
import { createApiToken } from "../provisioning/tokens.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import type { ApiTokenRecord } from "../store/store.js";
import { resolveConfig } from "./config-commands.js";
import { databaseFile as storeFile } from "../files/state-dir.js";

interface StoreOptions {
  config?: string;
  stateDir?: string;
}

/**
 * `centra-pxe token create|list|revoke`: admin bearer tokens for the API. These work on the store
 * file directly (stateDir/centra-pxe.db), not through the API: the first token cannot come from an
 * API that needs a token, and whoever can write the state directory is the server's admin anyway.
 * SQLite's WAL lets this run while the server is serving; the server sees a change at once.
 */
export function registerTokenCommands(program: Command): void {
  const token = program.command("token").description("admin tokens for the provisioning API: create, list, revoke");

  const withStore = async <T>(
    options: StoreOptions,
    body: (store: ReturnType<typeof openSqliteStore>) => Promise<T>,
  ): Promise<T> => {
    const stateDir = options.stateDir ?? resolveConfig(options.config).config.stateDir;
    await mkdir(stateDir, { recursive: true });
    const store = openSqliteStore(storeFile(stateDir));
    try {
      return await body(store);
    } finally {
      await store.close();
    }
  };

  token
    .command("create")
    .description("create an admin token; it is printed once and only its hash is kept")
    .option("--name <name>", "what the token is for (shown in list and in the event log)", "admin")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .option("--json", "print JSON")
    .action(async (options: StoreOptions & { name: string; json?: boolean }) => {
      const created = await withStore(options, (store) => createApiToken(store, options.name));
      if (options.json) {
        process.stdout.write(
          `${JSON.stringify({ id: created.record.id, name: created.record.name, token: created.token })}\n`,
        );
        return;
      }
      process.stdout.write(`${created.token}\n`);
      process.stderr.write(
        `token ${created.record.id} (${created.record.name}) created; it is shown only now. Use it as:\n  export CENTRA_PXE_TOKEN=<token>\n  curl -H "Authorization: Bearer $CENTRA_PXE_TOKEN" …\n`,
      );
    });

  token
    .command("list")
    .description("list tokens (never their secrets)")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .option("--json", "print JSON")
    .action(async (options: StoreOptions & { json?: boolean }) => {
      const tokens = await withStore(options, (store) => store.apiTokens.list());
      if (options.json) {
        process.stdout.write(`${JSON.stringify(tokens.map(({ hash: _hash, ...rest }) => rest))}\n`);
        return;
      }
      if (tokens.length === 0) {
        process.stdout.write("no tokens; create one with: centra-pxe token create --name <what-for>\n");
        return;
      }
      process.stdout.write(formatTokens(tokens));
    });

  token
    .command("revoke <id>")
    .description("revoke a token at once; requests with it get 403")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .action(async (id: string, options: StoreOptions) => {
      await withStore(options, async (store) => {
        if (await store.apiTokens.revoke(id, new Date().toISOString())) {
          process.stdout.write(`revoked token ${id}\n`);
          return;
        }
        const known = (await store.apiTokens.list()).find((t) => t.id === id);
        throw Object.assign(
          new CentraError(
            "TOKEN_UNKNOWN",
            known
              ? `token ${id} was already revoked at ${known.revokedAt}`
              : `no token ${id} (see: centra-pxe token list)`,
          ),
          {
            exitCode: 1,
          },
        );
      });
    });
}

function formatTokens(tokens: ApiTokenRecord[]): string {
  const rows = [
    ["ID", "NAME", "CREATED", "LAST USED", "STATUS"],
    ...tokens.map((t) => [
      t.id,
      t.name,
      t.createdAt,
      t.lastUsedAt ?? "-",
      t.revokedAt ? `revoked ${t.revokedAt}` : "active",
    ]),
  ];
  return table(rows);
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return (
    rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n") +
    "\n"
  );
}
