import type { Command } from "commander";
import type { AuditRecord } from "../store/store.js";
import { ApiClient, type ApiClientOptions, URL_HELP } from "./nodes-command.js";
import { table } from "./token-command.js";

/**
 * `centra-pxe audit`: the audit trail through the running server's API (an admin credential): the
 * API's changes and those the CLI made on the store file itself (local-audit.ts).
 */

export function registerAuditCommand(program: Command): void {
  program
    .command("audit")
    .description("the audit trail: who changed what, when, from where, and how it ended (newest first)")
    .option("--actor <who>", "token id or name, OIDC subject or name, local user")
    .option("--action <action>", "e.g. 'POST /nodes/{ref}/provision' or 'token create'; a trailing * matches a prefix")
    .option("--target <ref>", "node ref or token id")
    .option("--outcome <outcome>", "success, denied or failed")
    .option("--since <time>", "at or after this ISO time")
    .option("--until <time>", "before this ISO time")
    .option("--before <seq>", "records older than this seq (the previous page's next)")
    .option("--limit <n>", "at most this many (up to 500)", "100")
    .option("--url <url>", URL_HELP)
    .option("--token <token>", "admin credential (default: $CENTRA_PXE_TOKEN)")
    .option("-c, --config <file>", "config file: the server is http://serverAddress[:http.port] (when no --url)")
    .option("--json", "print JSON")
    .action(async (options: Record<string, string | boolean | undefined> & ApiClientOptions) => {
      const query = new URLSearchParams();
      for (const key of ["actor", "action", "target", "outcome", "since", "until", "before", "limit"]) {
        const value = options[key];
        if (typeof value === "string") query.set(key, value);
      }
      const client = new ApiClient({
        ...(options.url !== undefined ? { url: options.url } : {}),
        ...(options.token ? { token: options.token } : {}),
        ...(options.config !== undefined ? { config: options.config } : {}),
      });
      const page = await client.call<{ records: AuditRecord[]; next?: number; more: boolean }>(
        "GET",
        `/audit?${query}`,
      );
      if (options.json) {
        process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
        return;
      }
      if (page.records.length === 0) {
        process.stdout.write("no audit records match\n");
        return;
      }
      process.stdout.write(formatAudit(page.records));
      if (page.more) process.stderr.write(`more: centra-pxe audit --before ${page.next} …\n`);
    });
}

export function formatAudit(records: AuditRecord[]): string {
  const who = (r: AuditRecord) =>
    r.actor.kind === "token"
      ? `token ${r.actor.id}${r.actor.name ? ` (${r.actor.name})` : ""}`
      : r.actor.kind === "oidc"
        ? `${r.actor.name ?? r.actor.id} @ ${r.actor.issuer ?? "?"}`
        : `local ${r.actor.id}${r.actor.name ? ` (${r.actor.name})` : ""}`;
  return table([
    ["SEQ", "AT", "ACTOR", "FROM", "ACTION", "TARGET", "OUTCOME", "SUMMARY"],
    ...records.map((r) => [
      String(r.seq),
      r.at,
      who(r),
      r.address,
      r.action,
      r.target ?? "-",
      `${r.outcome} ${r.status}`,
      Object.keys(r.summary).length ? JSON.stringify(r.summary).slice(0, 120) : "-",
    ]),
  ]);
}
