import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Command } from "commander";
import { createSqliteLeaseStore } from "../store/leases-sqlite.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import { registerLeasesCommand } from "./leases-command.js";

async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerLeasesCommand(program);
  let out = "";
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => {
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(["node", "centra-pxe", ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe("centra-pxe leases", () => {
  it("prints active leases as a table, --all adds the rest, --json is parseable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "leases-cli-"));
    try {
      // An initialised state directory: the store's schema, then the DHCP part's table.
      const store = openSqliteStore(join(dir, "centra-pxe.db"));
      const db = store.db;
      const future = Date.now() + 3600_000;
      await createSqliteLeaseStore(db).saveLeases([
        {
          address: "10.0.100.100",
          mac: "52:54:00:00:00:01",
          hostname: "worker-01",
          expiresAt: future,
          state: "bound",
          updatedAt: 1,
        },
        { address: "10.0.100.9", mac: "52:54:00:00:00:02", expiresAt: 1, state: "released", updatedAt: 1 },
      ]);
      await store.close();
      const table = await run(["leases", "--state-dir", dir]);
      assert.match(
        table,
        /^ADDRESS\s+MAC\s+STATE\s+EXPIRES\s+HOSTNAME\n10\.0\.100\.100\s+52:54:00:00:00:01\s+active\s+\S+\s+worker-01\n$/,
      );
      const all = await run(["leases", "--state-dir", dir, "--all"]);
      assert.equal(all.trim().split("\n").length, 3);
      assert.ok(all.indexOf("10.0.100.9 ") < all.indexOf("10.0.100.100"), "address order");
      const json = JSON.parse(await run(["leases", "--state-dir", dir, "--json"])) as {
        address: string;
        status: string;
      }[];
      assert.deepEqual(
        json.map((l) => [l.address, l.status]),
        [["10.0.100.100", "active"]],
      );
      // A mistyped state directory is an error naming the path, never "no leases" from a new empty file.
      await assert.rejects(run(["leases", "--state-dir", join(dir, "none")]), /no state directory at .*\/none \(run/);
      assert.equal(existsSync(join(dir, "none")), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
