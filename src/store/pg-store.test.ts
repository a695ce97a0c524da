import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { notifyPayloads, pgConnectionConfig, redactedUrl } from "./pg-store.js";

const dir = mkdtempSync(join(tmpdir(), "pg-config-"));

test("the password comes from the URL, else storage.passwordFile, else PGPASSWORD", () => {
  writeFileSync(join(dir, "pw"), "from-file\n");
  const saved = process.env.PGPASSWORD;
  process.env.PGPASSWORD = "from-env";
  try {
    const password = (settings: Parameters<typeof pgConnectionConfig>[0]) =>
      decodeURIComponent(new URL(String(pgConnectionConfig(settings).connectionString)).password);
    assert.equal(password({ url: "postgres://pxe:inline@db/pxe" }), "inline", "the URL's own wins");
    assert.equal(password({ url: "postgres://pxe@db/pxe", passwordFile: join(dir, "pw") }), "from-file");
    assert.equal(password({ url: "postgres://pxe@db/pxe" }), "from-env");
    assert.throws(() => password({ url: "postgres://pxe@db/pxe", passwordFile: join(dir, "pwx") }), /ENOENT.*pwx/);
  } finally {
    if (saved === undefined) delete process.env.PGPASSWORD;
    else process.env.PGPASSWORD = saved;
  }
});

test("sslMode as libpq means it: require encrypts only, verify-* check the CA, verify-ca not the host name", () => {
  writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\n");
  assert.equal(pgConnectionConfig({ url: "postgres://pxe@db/pxe" }).ssl, undefined);
  assert.equal(pgConnectionConfig({ url: "postgres://pxe@db/pxe", sslMode: "disable" }).ssl, undefined);
  assert.deepEqual(pgConnectionConfig({ url: "postgres://pxe@db/pxe", sslMode: "require" }).ssl, {
    rejectUnauthorized: false,
  });
  const full = pgConnectionConfig({
    url: "postgres://pxe@db/pxe",
    sslMode: "verify-full",
    caFile: join(dir, "ca.pem"),
  });
  assert.deepEqual(full.ssl, { rejectUnauthorized: true, ca: "-----BEGIN CERTIFICATE-----\n" });
  const ca = pgConnectionConfig({ url: "postgres://pxe@db/pxe?sslmode=verify-ca", caFile: join(dir, "ca.pem") });
  assert.equal(typeof ca.ssl === "object" && typeof ca.ssl.checkServerIdentity, "function");
  assert.doesNotMatch(String(ca.connectionString), /sslmode/, "the URL's sslmode is ours to apply, not pg's");
});

test("a URL is logged without its password; NOTIFY payloads stay under the limit", () => {
  assert.equal(redactedUrl("postgres://pxe:s3cret@db:5432/pxe"), "postgres://pxe:***@db:5432/pxe");
  const addresses = Array.from({ length: 2_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  const payloads = notifyPayloads("centra-pxe-1-abc", addresses);
  assert.ok(payloads.length > 1);
  for (const p of payloads) assert.ok(p.length < 8_000 && p.startsWith("centra-pxe-1-abc|"));
  assert.deepEqual(
    payloads.flatMap((p) => p.slice(p.indexOf("|") + 1).split(",")),
    addresses,
  );
});
