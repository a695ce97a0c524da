import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { createSqliteLeaseStore, listLeases } from "./leases-sqlite.js";
import type { LeaseRecord } from "../contracts/lease-store.js";

const lease = (address: string, mac: string, extra: Partial<LeaseRecord> = {}): LeaseRecord => ({
  address,
  mac,
  expiresAt: 1_000_000,
  state: "bound",
  updatedAt: 1,
  ...extra,
});

describe("SQLite lease store", () => {
  it("saves, upserts by address and reloads after reopening", async () => {
    const dir = mkdtempSync(join(tmpdir(), "leases-"));
    try {
      const file = join(dir, "db.sqlite");
      let db = new Database(file);
      db.pragma("journal_mode = WAL");
      const store = createSqliteLeaseStore(db);
      assert.equal(db.pragma("synchronous", { simple: true }), 2, "commits must be FULL-synchronous");
      await store.saveLeases([
        lease("10.0.0.10", "aa:bb:cc:dd:ee:01", { hostname: "a", clientId: "01aa" }),
        lease("10.0.0.9", "aa:bb:cc:dd:ee:02"),
      ]);
      await store.saveLeases([lease("10.0.0.10", "aa:bb:cc:dd:ee:03", { state: "released" })]);
      db.close();
      db = new Database(file);
      const reopened = createSqliteLeaseStore(db);
      const rows = await reopened.loadLeases();
      assert.equal(rows.length, 2);
      const listed = listLeases(db);
      assert.deepEqual(
        listed.map((l) => [l.address, l.mac, l.state]),
        [
          ["10.0.0.9", "aa:bb:cc:dd:ee:02", "bound"],
          ["10.0.0.10", "aa:bb:cc:dd:ee:03", "released"],
        ],
      );
      assert.equal(listed[1]!.hostname, undefined);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("commits through its writer thread until closed, then refuses", async () => {
    const dir = mkdtempSync(join(tmpdir(), "leases-"));
    try {
      const db = new Database(join(dir, "db.sqlite"));
      db.pragma("journal_mode = WAL");
      const store = createSqliteLeaseStore(db);
      await Promise.all([
        store.saveLeases([lease("10.0.0.1", "aa:bb:cc:dd:ee:01")]),
        store.saveLeases([lease("10.0.0.2", "aa:bb:cc:dd:ee:02")]),
      ]);
      assert.equal(listLeases(db).length, 2, "visible to the caller's connection once saved");
      await store.close?.();
      await assert.rejects(store.saveLeases([lease("10.0.0.3", "aa:bb:cc:dd:ee:03")]), /closed/);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lists an empty table on a fresh database", () => {
    const db = new Database(":memory:");
    assert.deepEqual(listLeases(db), []);
    db.close();
  });
});
