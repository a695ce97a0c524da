import type { Command } from "commander";
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import type { LeaseRecord } from "../contracts/lease-store.js";
import { databaseFile } from "../files/state-dir.js";
import { listLeases } from "../store/leases-sqlite.js";
import { resolveConfig } from "./config-commands.js";

function describeState(lease: LeaseRecord, now: number): string {
  if (lease.state === "bound") return lease.expiresAt > now ? "active" : "expired";
  if (lease.state === "declined") return lease.expiresAt > now ? "declined (conflict)" : "expired";
  return lease.state;
}

function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return `${rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** `centra-pxe leases`: the DHCP leases in the embedded database, active ones by default. */
export function registerLeasesCommand(program: Command): void {
  program
    .command("leases")
    .description("list DHCP leases (active by default)")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory (default: the config's stateDir)")
    .option("-a, --all", "also released, expired and declined addresses")
    .option("--json", "one JSON array instead of a table")
    .action((options: { config?: string; stateDir?: string; all?: boolean; json?: boolean }) => {
      const stateDir = options.stateDir ?? resolveConfig(options.config).config.stateDir;
      const file = databaseFile(stateDir);
      const now = Date.now();
      let leases: LeaseRecord[] = [];
      if (existsSync(file)) {
        const db = new Database(file, { fileMustExist: true });
        try {
          leases = listLeases(db);
        } finally {
          db.close();
        }
      }
      const shown = options.all ? leases : leases.filter((l) => l.state === "bound" && l.expiresAt > now);
      if (options.json) {
        process.stdout.write(
          `${JSON.stringify(
            shown.map((l) => ({
              ...l,
              status: describeState(l, now),
              expiresAt: new Date(l.expiresAt).toISOString(),
              updatedAt: new Date(l.updatedAt).toISOString(),
            })),
            null,
            2,
          )}\n`,
        );
        return;
      }
      if (shown.length === 0) {
        process.stdout.write(
          options.all || leases.length === 0
            ? `no leases in ${file}\n`
            : `no active leases (${leases.length} past ones: --all shows them)\n`,
        );
        return;
      }
      const rows = [["ADDRESS", "MAC", "STATE", "EXPIRES", "HOSTNAME"]];
      for (const l of shown)
        rows.push([
          l.address,
          l.mac || "-",
          describeState(l, now),
          new Date(l.expiresAt).toISOString().replace(/\.\d+Z$/, "Z"),
          l.hostname ?? "",
        ]);
      process.stdout.write(formatTable(rows));
    });
}
