import type { Command } from "commander";
import { CentraError } from "../errors.js";
import { createApiToken } from "../provisioning/tokens.js";
import type { ApiTokenRecord } from "../store/store.js";
import { type StateOptions as StoreOptions, jsonOption, printJson, stateOptions, withStateStore } from "./common.js";

/**
 * `centra-pxe token create|list|revoke`: admin bearer tokens for the API. These work on the store
 * file directly (stateDir/centra-pxe.db), not through the API: the first token cannot come from an
 * API that needs a token, and whoever can write the state directory is the server's admin anyway.
 * SQLite's WAL lets this run while the server is serving; the server sees a change at once.
 */
export function registerTokenCommands(program: Command): void {
  const token = program.command("token").description("admin tokens for the provisioning API: create, list, revoke");

  jsonOption(
    stateOptions(
      token
        .command("create")
        .description("create an admin token; it is printed once and only its hash is kept")
        .option("--name <name>", "what the token is for (shown in list and in the event log)", "admin"),
    ),
  ).action(async (options: StoreOptions & { name: string; json?: boolean }) => {
    const created = await withStateStore(options, "write", (store) => createApiToken(store, options.name));
    if (options.json) {
      printJson({ id: created.record.id, name: created.record.name, token: created.token });
      return;
    }
    process.stdout.write(`${created.token}\n`);
    process.stderr.write(
      `token ${created.record.id} (${created.record.name}) created; it is shown only now. Use it as:\n  export CENTRA_PXE_TOKEN=<token>\n  curl -H "Authorization: Bearer $CENTRA_PXE_TOKEN" …\n`,
    );
  });

  jsonOption(stateOptions(token.command("list").description("list tokens (never their secrets)"))).action(
    async (options: StoreOptions & { json?: boolean }) => {
      const tokens = await withStateStore(options, "read", (store) => store.apiTokens.list());
      if (options.json) {
        printJson(tokens.map(({ hash: _hash, ...rest }) => rest));
        return;
      }
      if (tokens.length === 0) {
        process.stdout.write("no tokens; create one with: centra-pxe token create --name <what-for>\n");
        return;
      }
      process.stdout.write(formatTokens(tokens));
    },
  );

  stateOptions(token.command("revoke <id>").description("revoke a token at once; requests with it get 403")).action(
    async (id: string, options: StoreOptions) => {
      await withStateStore(options, "write", async (store) => {
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
    },
  );
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
