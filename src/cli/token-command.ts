import type { Command } from "commander";
import { ROLES } from "../config/roles.js";
import { CentraError } from "../errors.js";
import { formatScope } from "../identity/access.js";
import { parseTokenGrant, type TokenGrant } from "../identity/grant.js";
import { createApiToken } from "../provisioning/tokens.js";
import type { ApiTokenRecord, Store } from "../store/store.js";
import {
  CliError,
  type StateOptions as StoreOptions,
  jsonOption,
  printJson,
  stateOptions,
  withStateStore,
} from "./common.js";
import { auditedLocally } from "./local-audit.js";

/**
 * `centra-pxe token create|list|revoke`: bearer tokens for the API, each with a role (viewer,
 * operator, admin), an optional label scope and an optional expiry. These work on the store
 * file directly (stateDir/centra-pxe.db), not through the API: the first token cannot come from an
 * API that needs a token, and whoever can write the state directory is the server's admin anyway.
 * SQLite's WAL lets this run while the server is serving; the server sees a change at once.
 */
export function registerTokenCommands(program: Command): void {
  const token = program
    .command("token")
    .description("tokens for the provisioning API (role, scope, expiry): create, list, revoke");

  jsonOption(
    stateOptions(
      token
        .command("create")
        .description("create a token; it is printed once and only its hash is kept")
        .option("--name <name>", "what the token is for (shown in list, the event log and the audit trail)", "admin")
        .option("--role <role>", `what it may do: ${ROLES.join(", ")}`, "admin")
        .option(
          "--scope <key=value>",
          "only nodes with this label (repeatable, or key=value,key=value); viewer and operator tokens",
          (value: string, previous: string[] = []) => [...previous, value],
        )
        .option("--expires <duration>", "refused after this long, e.g. 12h, 30d (default: until revoked)"),
    ),
  ).action(
    async (
      options: StoreOptions & { name: string; role: string; scope?: string[]; expires?: string; json?: boolean },
    ) => {
      const grant = tokenGrant(options);
      const created = await withStateStore(options, "write", (store) =>
        auditedLocally(
          store,
          {
            action: "token create",
            summary: { name: options.name, ...grant, expiresAt: grant.expiresAt?.toISOString() },
          },
          () => createApiToken(store, options.name, grant),
        ),
      );
      const { id, name, role, scope, expiresAt } = created.record;
      if (options.json) {
        printJson({
          id,
          name,
          role,
          ...(scope ? { scope } : {}),
          ...(expiresAt ? { expiresAt } : {}),
          token: created.token,
        });
        return;
      }
      process.stdout.write(`${created.token}\n`);
      const limits = [scope ? `for ${formatScope(scope)}` : "", expiresAt ? `until ${expiresAt}` : ""].filter(Boolean);
      process.stderr.write(
        `${role} token ${id} (${name})${limits.length ? ` ${limits.join(" ")}` : ""} created; it is shown only now. Use it as:\n  export CENTRA_PXE_TOKEN=<token>\n  curl -H "Authorization: Bearer $CENTRA_PXE_TOKEN" …\n`,
      );
    },
  );

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
      await withStateStore(options, "write", (store) =>
        auditedLocally(store, { action: "token revoke", target: id }, () => revoke(store, id)),
      );
      process.stdout.write(`revoked token ${id}\n`);
    },
  );
}

async function revoke(store: Store, id: string): Promise<void> {
  if (await store.apiTokens.revoke(id, new Date().toISOString())) return;
  const known = (await store.apiTokens.list()).find((t) => t.id === id);
  throw Object.assign(
    new CentraError(
      "TOKEN_UNKNOWN",
      known ? `token ${id} was already revoked at ${known.revokedAt}` : `no token ${id} (see: centra-pxe token list)`,
    ),
    // The audit record's status: no such token, or one already revoked.
    { exitCode: 1, status: known ? 409 : 404 },
  );
}

/** --role, --scope and --expires as a grant, every problem at once. */
function tokenGrant(options: { role: string; scope?: string[]; expires?: string }): TokenGrant {
  const parsed = parseTokenGrant(options);
  if ("grant" in parsed) return parsed.grant;
  throw new CliError("TOKEN_GRANT", parsed.problems.map((p) => `--${p.field}: ${p.message}`).join("\n"));
}

function formatTokens(tokens: ApiTokenRecord[], now = Date.now()): string {
  const rows = [
    ["ID", "NAME", "ROLE", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "STATUS"],
    ...tokens.map((t) => [
      t.id,
      t.name,
      t.role,
      t.scope ? formatScope(t.scope) : "-",
      t.createdAt,
      t.expiresAt ?? "-",
      t.lastUsedAt ?? "-",
      t.revokedAt
        ? `revoked ${t.revokedAt}`
        : t.expiresAt !== undefined && Date.parse(t.expiresAt) <= now
          ? "expired"
          : "active",
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
