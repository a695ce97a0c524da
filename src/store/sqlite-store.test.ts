import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openSqliteStore } from "./sqlite-store.js";
import { storeContract } from "./store-contract.js";

storeContract("sqlite", async () => openSqliteStore(":memory:"));

test("sqlite: data survives closing and reopening the file", async () => {
  const file = join(mkdtempSync(join(tmpdir(), "store-")), "centra-pxe.db");
  const first = openSqliteStore(file);
  await first.images.put({ name: "nixos", version: "1", files: {}, cmdline: "", addedAt: "2026-11-25T00:00:00.000Z" });
  await first.close();
  const second = openSqliteStore(file);
  assert.equal((await second.images.list()).length, 1);
  await second.close();
});
