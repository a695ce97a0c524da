import assert from "node:assert/strict";
import Database from "better-sqlite3";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openSqliteStore } from "./sqlite-store.js";
test("sqlite: data survives closing and reopening the file", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "store-")), "centra-pxe.db");
  const first = openSqliteStore(file);
  await first.images.put({
    name: "nixos",
    arch: "x86_64",
    version: "1",
    files: {},
    cmdline: "",
    addedAt: "2026-11-25T00:00:00.000Z",
  });
  await first.close();
  const second = openSqliteStore(file);
  assert.equal((await second.images.list()).length, 1);
  await second.close();
});

test("sqlite: a file from the first release is migrated in place, its images kept", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "store-")), "centra-pxe.db");
  // Schema 1 as released: image_versions only.
  const old = new Database(file);
  old.exec(`CREATE TABLE image_versions (name TEXT NOT NULL, version TEXT NOT NULL, files TEXT NOT NULL, cmdline TEXT NOT NULL DEFAULT '',
            added_at TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (name, version));
            INSERT INTO image_versions VALUES ('nixos', '24.05', '{}', '', '2026-11-25T00:00:00.000Z', 1);`);
  old.pragma("user_version = 1");
  old.close();
  const store = openSqliteStore(file);
  assert.ok((await store.schemaVersion()) >= 2);
  assert.equal((await store.images.list()).length, 1);
  assert.deepEqual(await store.nodes.list(), []);
  await store.close();
});

test("sqlite: tokens made before roles existed become admin tokens, unscoped and without expiry", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "store-")), "centra-pxe.db");
  const first = openSqliteStore(file);
  first.db.exec(`PRAGMA user_version = 3;
    DROP TABLE audit_log;
    ALTER TABLE api_tokens DROP COLUMN role;
    ALTER TABLE api_tokens DROP COLUMN scope;
    ALTER TABLE api_tokens DROP COLUMN expires_at;
    ALTER TABLE nodes DROP COLUMN bmc;
    INSERT INTO api_tokens (id, name, hash, created_at) VALUES ('t1', 'ops', 'h1', '2026-11-25T00:00:00.000Z');`);
  await first.close();
  const store = openSqliteStore(file);
  assert.deepEqual(await store.apiTokens.findByHash("h1"), {
    id: "t1",
    name: "ops",
    hash: "h1",
    role: "admin",
    createdAt: "2026-11-25T00:00:00.000Z",
  });
  assert.deepEqual(await store.audit.list(), []);
  await store.close();
});

test("sqlite read-only: a missing file is refused and not created; the open file refuses writes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "store-"));
  const file = join(dir, "centra-pxe.db");
  assert.throws(() => openSqliteStore(file, { readonly: true }), /unable to open database file/);
  assert.throws(() => openSqliteStore(file, { mustExist: true }), /unable to open database file/);
  assert.equal(existsSync(file), false);
  await openSqliteStore(file).close();
  const reader = openSqliteStore(file, { readonly: true });
  assert.deepEqual(await reader.nodes.list(), []);
  await assert.rejects(
    reader.images.put({
      name: "nixos",
      arch: "x86_64",
      version: "1",
      files: {},
      cmdline: "",
      addedAt: "2026-11-25T00:00:00.000Z",
    }),
    /readonly database/,
  );
  await reader.close();
});

test("sqlite read-only: a file older than this program is refused with what to do, not migrated", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "store-")), "centra-pxe.db");
  const old = new Database(file);
  old.pragma("user_version = 1");
  old.close();
  assert.throws(() => openSqliteStore(file, { readonly: true }), /at schema 1, older than .*run `centra-pxe init`/);
  const check = new Database(file, { readonly: true });
  assert.equal(check.pragma("user_version", { simple: true }), 1);
  check.close();
});

test("sqlite: image versions recorded before images had an architecture become x86_64's, where their files are", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "store-")), "centra-pxe.db");
  // The image_versions table as schema 5 left it (the migration before arches touches nothing else).
  const old = new Database(file);
  old.exec(`
    CREATE TABLE image_versions (
      name TEXT NOT NULL, version TEXT NOT NULL, files TEXT NOT NULL, cmdline TEXT NOT NULL DEFAULT '',
      added_at TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (name, version)
    );
    INSERT INTO image_versions VALUES ('nixos', '24.05', '{}', 'quiet', '2026-11-25T00:00:00.000Z', 1);
    PRAGMA user_version = 5;
  `);
  old.close();
  const store = openSqliteStore(file);
  try {
    assert.deepEqual(await store.images.list(), [
      {
        name: "nixos",
        arch: "x86_64",
        version: "24.05",
        files: {},
        cmdline: "quiet",
        addedAt: "2026-11-25T00:00:00.000Z",
      },
    ]);
    await store.images.put({ name: "nixos", arch: "arm64", version: "24.05", files: {}, cmdline: "", addedAt: "x" });
    assert.equal((await store.images.list("nixos")).length, 2, "the same version on another arch is another record");
  } finally {
    await store.close();
  }
});
