import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { decodeSignatureLists } from "../../src/tls/signature-list.js";
import { cliArgs, repo } from "../support/daemon.js";
import { requireBinaries } from "../support/netns.js";

/** `centra-pxe tls init` with the real openssl: what it makes, what it keeps on a second run. */

const dir = mkdtempSync(join(tmpdir(), "tls-init-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function tlsInit(args: string[]) {
  const r = spawnSync(process.execPath, cliArgs(["tls", "init", "--dir", dir, "--json", ...args]), {
    cwd: repo,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { written: string[]; subjectAltName: string };
}

test("a CA, a server certificate for the address as IP and DNS name signed by it, the CA as an EFI signature list; the CA is kept", (t) => {
  if (!requireBinaries(t, "openssl")) return;
  const first = tlsInit(["--address", "10.0.100.10", "--address", "pxe.example"]);
  assert.equal(first.written.length, 5);
  assert.equal(first.subjectAltName, "IP Address:10.0.100.10, DNS:10.0.100.10, DNS:pxe.example");
  const ca = new X509Certificate(readFileSync(join(dir, "ca.pem")));
  const cert = new X509Certificate(readFileSync(join(dir, "server.pem")));
  assert.ok(ca.ca && !cert.ca);
  assert.ok(cert.verify(ca.publicKey), "signed by the CA");
  assert.ok(cert.checkIP("10.0.100.10") && cert.checkHost("pxe.example"));
  assert.equal(cert.publicKey.asymmetricKeyType, "rsa", "EDK2's suites are RSA-authenticated");
  for (const key of ["ca-key.pem", "server-key.pem"]) assert.equal(statSync(join(dir, key)).mode & 0o777, 0o600, key);
  const [entry] = decodeSignatureLists(readFileSync(join(dir, "ca.esl")));
  assert.ok(entry!.data.equals(ca.raw), "the ESL holds the CA's DER");

  const again = tlsInit([]);
  assert.deepEqual(again.written, [], "nothing rewritten");
  const renewed = tlsInit(["--renew", "--address", "10.0.100.11"]);
  assert.deepEqual(renewed.written.map((f) => f.slice(dir.length + 1)).sort(), ["server-key.pem", "server.pem"]);
  assert.equal(new X509Certificate(readFileSync(join(dir, "ca.pem"))).fingerprint256, ca.fingerprint256, "same CA");
  assert.ok(new X509Certificate(readFileSync(join(dir, "server.pem"))).checkIP("10.0.100.11"));
});
