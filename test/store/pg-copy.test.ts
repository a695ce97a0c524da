import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createPgLeaseStore, listPgLeases } from "../../src/store/leases-pg.js";
import { createSqliteLeaseStore, listLeases } from "../../src/store/leases-sqlite.js";
import { openPgStore } from "../../src/store/pg-store.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { NodeRecord, Store } from "../../src/store/store.js";
import { cliArgs } from "../support/daemon.js";
import { type PostgresCluster, startPostgres } from "../support/postgres.js";

// `centra-pxe db copy|status|migrate` through the real CLI against a throwaway cluster: a site
// moved from SQLite keeps every node, event, token, secret, image and lease, with its ids and seqs.
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(join(tmpdir(), "centra-copy-"));
before(async () => {
  cluster = await startPostgres();
});
after(() => {
  cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[]) =>
  execFileSync(process.execPath, cliArgs(args), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

async function everything(store: Store) {
  return {
    images: await store.images.list(),
    nodes: await store.nodes.list(),
    events: await store.events.list(),
    apiTokens: await store.apiTokens.list(),
    callback: await store.callbackTokens.find("cb-1"),
    secret: await store.secrets.getOrCreate("callback-key", () => "not this one"),
    audit: await store.audit.list(),
  };
}

test("db copy moves a site from SQLite to PostgreSQL without losing a row, ids and seqs kept", async () => {
  const file = join(dir, "centra-pxe.db");
  const sqlite = openSqliteStore(file);
  const at = (n: number) => `2026-11-25T00:00:${String(n).padStart(2, "0")}.000Z`;
  await sqlite.images.put({
    name: "nixos",
    arch: "x86_64",
    version: "24.11",
    files: { kernel: { size: 3, sha256: "ab".repeat(32) } },
    cmdline: "quiet",
    addedAt: at(0),
  });
  const node = (i: number, extra: Partial<NodeRecord> = {}): NodeRecord => ({
    id: `n-${String(i).padStart(12, "0")}`,
    macs: [`52:54:00:00:01:${i.toString(16).padStart(2, "0")}`],
    labels: { rack: `r${i % 3}` },
    state: "discovered",
    source: "discovered",
    stateChangedAt: at(i),
    createdAt: at(i),
    ...extra,
  });
  // Created out of id order: the copy must keep creation order, not sort by id.
  for (const i of [5, 2, 9, 1])
    await sqlite.nodes.create(
      node(
        i,
        i === 9 ? { hostname: "web-9", ipAddress: "10.0.0.9", macs: ["52:54:00:00:01:09", "52:54:00:00:02:09"] } : {},
      ),
    );
  await sqlite.events.append({ nodeId: "n-x", kind: "removed", at: at(1), details: { why: "gap" } });
  for (const i of [5, 2, 9, 1])
    await sqlite.events.append({
      nodeId: node(i).id,
      kind: "discovered",
      toState: "discovered",
      at: at(i),
      details: { i },
    });
  await sqlite.apiTokens.create({
    id: "t1",
    name: "ops",
    hash: "h1",
    role: "operator",
    scope: { rack: "a1" },
    createdAt: at(0),
    expiresAt: at(59),
    lastUsedAt: at(3),
  });
  await sqlite.apiTokens.create({
    id: "t2",
    name: "old",
    hash: "h2",
    role: "admin",
    createdAt: at(1),
    revokedAt: at(2),
  });
  await sqlite.callbackTokens.issue({
    hash: "cb-1",
    nodeId: node(9).id,
    provisioningId: "p-1",
    createdAt: at(0),
    expiresAt: at(50),
  });
  await sqlite.secrets.getOrCreate("callback-key", () => "s3cret");
  await sqlite.audit.append({
    at: at(4),
    actor: { kind: "token", id: "t1", name: "ops" },
    action: "POST /nodes/{ref}/provision",
    target: "web-9",
    summary: {},
    address: "10.0.0.1",
    outcome: "success",
    status: 200,
  });
  const leases = createSqliteLeaseStore(sqlite.db, { writerThread: false });
  await leases.saveLeases([
    {
      address: "10.0.0.50",
      mac: "52:54:00:00:01:05",
      hostname: "a",
      clientId: "01aa",
      expiresAt: 9e12,
      state: "bound",
      updatedAt: 1,
    },
    { address: "10.0.0.51", mac: "", expiresAt: 5, state: "declined", updatedAt: 2 },
  ]);
  const before = await everything(sqlite);
  const beforeLeases = listLeases(sqlite.db);
  await sqlite.close();

  const url = await cluster!.createDatabase();
  const report = JSON.parse(cli(["db", "copy", "--from", file, "--to", url, "--json"])) as {
    tables: Record<string, number>;
  };
  assert.deepEqual(report.tables, {
    image_versions: 1,
    nodes: 4,
    node_macs: 5,
    node_events: 5,
    api_tokens: 2,
    callback_tokens: 1,
    secrets: 1,
    leases: 2,
    audit_log: 1,
  });

  const pg = await openPgStore({ kind: "postgres", url, poolSize: 2 });
  try {
    assert.deepEqual(await everything(pg), before, "every record, in order, field for field");
    assert.deepEqual(await listPgLeases(pg), beforeLeases);
    const next = await pg.events.append({ nodeId: "n-new", kind: "discovered", at: at(20), details: {} });
    assert.equal(next.seq, Math.max(...before.events.map((e) => e.seq)) + 1, "the seq continues after the copied ones");
    const consumed = await pg.callbackTokens.consume("cb-1", at(10));
    assert.equal(consumed.ok, true, "a token issued before the move is still good once");
    assert.deepEqual(await createPgLeaseStore(pg).findByMac!("52:54:00:00:01:05"), [beforeLeases[0]]);
  } finally {
    await pg.close();
  }
  // Copying twice would double nothing: a database that holds rows is refused.
  assert.throws(() => cli(["db", "copy", "--from", file, "--to", url]), /already holds image_versions/);
});

test("db status and db migrate report and apply the schema of a PostgreSQL database", async () => {
  const url = await cluster!.createDatabase();
  const config = join(dir, "centra-pxe.yaml");
  writeFileSync(config, `stateDir: ${dir}\nstorage: "${url}"\ndhcp: { mode: off }\n`);
  const fresh = JSON.parse(cli(["db", "status", "--config", config, "--json"])) as {
    schemaVersion: number;
    pending: number[];
  };
  assert.equal(fresh.schemaVersion, 0);
  assert.ok(fresh.pending.length >= 1);
  assert.match(cli(["db", "migrate", "--config", config]), /applied migrations 1/);
  assert.match(cli(["db", "migrate", "--url", url]), /up to date/);
  const done = JSON.parse(cli(["db", "status", "--url", url, "--json"])) as {
    schemaVersion: number;
    pending: number[];
  };
  assert.deepEqual(done.pending, []);
  assert.equal(done.schemaVersion, fresh.pending.at(-1));
});
