import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { cliArgs, repo } from "../support/daemon.js";

/** `centra-pxe ipxe build` refuses what it cannot build before running any compiler, saying why. */

const dir = mkdtempSync(join(tmpdir(), "ipxe-build-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function build(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, cliArgs(["ipxe", "build", "--state-dir", join(dir, "state"), ...args]), {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, CENTRA_PXE_IPXE_SOURCE: "", CENTRA_PXE_CONFIG: join(dir, "none.yaml"), ...env },
  });
  return { status: r.status, stderr: r.stderr };
}

test("no source, an unknown target, a bad URL, https:// without a CA, a source that is not iPXE: refused with the reason", () => {
  writeFileSync(join(dir, "none.yaml"), "{}\n");
  const noSource = build([]);
  assert.equal(noSource.status, 1);
  assert.match(noSource.stderr, /no iPXE source: give --source/);
  const unknown = build(["--source", dir, "--targets", "ipxe.efi,bogus.efi"]);
  assert.equal(unknown.status, 1);
  assert.match(
    unknown.stderr,
    /unknown --targets bogus\.efi; known: undionly\.kpxe, ipxe\.efi, snponly\.efi, ipxe-arm64\.efi/,
  );
  assert.match(build(["--source", dir, "--url", "ftp://x"]).stderr, /is not an origin/);
  assert.match(
    build(["--source", dir, "--url", "https://10.0.0.1"]).stderr,
    /https:\/\/ URL needs the CA .* http\.tls/,
  );
  const notIpxe = build(["--source", dir, "--targets", "ipxe.efi"]);
  assert.equal(notIpxe.status, 1);
  assert.match(notIpxe.stderr, /is not an iPXE source tree/);
});
