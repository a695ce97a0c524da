import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { openPgStore } from "../../src/store/pg-store.js";
import { type PostgresCluster, startPostgres } from "../support/postgres.js";

// storage.passwordFile / PGPASSWORD and the TLS options against a real server: TCP on loopback,
// TLS with a self-signed certificate, every TCP login checked by password (scram-sha-256).
let cluster: PostgresCluster | undefined;
const dir = mkdtempSync(join(tmpdir(), "centra-pg-tls-"));
let url = "";

before(async () => {
  cluster = await startPostgres(undefined, { tls: true });
  if (!cluster) return;
  const admin = new pg.Client({ connectionString: cluster.url() });
  await admin.connect();
  await admin.query(`CREATE ROLE pxe LOGIN PASSWORD 'correct horse'`);
  await admin.query(`CREATE DATABASE pxe OWNER pxe`);
  await admin.end();
  url = `postgres://pxe@127.0.0.1:${cluster.tcpPort}/pxe`;
  writeFileSync(join(dir, "password"), "correct horse\n");
  writeFileSync(join(dir, "wrong"), "battery staple\n");
});
after(() => {
  cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function sslInUse(storage: Parameters<typeof openPgStore>[0]): Promise<boolean> {
  const store = await openPgStore(storage);
  try {
    const { rows } = await store.pool.query<{ ssl: boolean }>(
      `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`,
    );
    return rows[0]!.ssl;
  } finally {
    await store.close();
  }
}

test("the password comes from storage.passwordFile, else PGPASSWORD; a wrong one is refused", async () => {
  assert.equal(await sslInUse({ url, passwordFile: join(dir, "password"), sslMode: "require" }), true);
  await assert.rejects(openPgStore({ url, passwordFile: join(dir, "wrong"), sslMode: "require" }), /password/);
  const saved = process.env.PGPASSWORD;
  process.env.PGPASSWORD = "correct horse";
  try {
    assert.equal(await sslInUse({ url, sslMode: "require" }), true);
  } finally {
    if (saved === undefined) delete process.env.PGPASSWORD;
    else process.env.PGPASSWORD = saved;
  }
});

test("verify-full checks the server's certificate against caFile", async () => {
  const passwordFile = join(dir, "password");
  assert.equal(await sslInUse({ url, passwordFile, sslMode: "verify-full", caFile: cluster!.caFile! }), true);
  // Without the CA the self-signed certificate is not trusted: no connection, not a silent downgrade.
  await assert.rejects(openPgStore({ url, passwordFile, sslMode: "verify-full" }), /self.signed|certificate/);
  // A certificate for 127.0.0.1 does not name "localhost2": verify-full refuses, verify-ca accepts.
  const other = url.replace("127.0.0.1", "localhost");
  assert.equal(await sslInUse({ url: other, passwordFile, sslMode: "verify-ca", caFile: cluster!.caFile! }), true);
});
