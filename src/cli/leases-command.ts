import type { Command } from "commander";
import type { LeaseRecord } from "../contracts/lease-store.js";
import { listPgLeases } from "../store/leases-pg.js";
import { databaseFile } from "../files/state-dir.js";
import { listLeases } from "../store/leases-sqlite.js";
import { type StateOptions, jsonOption, printJson, stateOptions, withStateStore } from "./common.js";

function describeState(lease: LeaseRecord, now: number): string {
  if (lease.state === "bound") return lease.expiresAt > now ? "active" : "expired";
  if (lease.state === "declined") return lease.expiresAt > now ? "declined (conflict)" : "expired";
  if (lease.state === "offered") return lease.expiresAt > now ? "offered" : "expired";
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
  jsonOption(
    stateOptions(program.command("leases").description("list DHCP leases (active by default)")).option(
      "-a, --all",
      "also released, expired and declined addresses",
    ),
    "one JSON array instead of a table",
  ).action(async (options: StateOptions & { all?: boolean; json?: boolean }) => {
    const now = Date.now();
    let file = "";
    const leases = await withStateStore(options, "read", async (store, stateDir) => {
      file = databaseFile(stateDir);
      if (store.kind === "postgres") return listPgLeases(store);
      // The DHCP part makes its table on first start; before that there are simply no leases
      // (and a read-only connection could not create the table anyway).
      const hasTable = store.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'").get();
      return hasTable ? listLeases(store.db) : ([] as LeaseRecord[]);
    });
    const shown = options.all ? leases : leases.filter((l) => l.state === "bound" && l.expiresAt > now);
    if (options.json) {
      printJson(
        shown.map((l) => ({
          ...l,
          status: describeState(l, now),
          expiresAt: new Date(l.expiresAt).toISOString(),
          updatedAt: new Date(l.updatedAt).toISOString(),
        })),
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
