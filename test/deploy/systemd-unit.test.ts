import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { repo } from "../support/daemon.js";
import { requireBinaries } from "../support/netns.js";

/**
 * contrib/systemd/centra-pxe.service through `systemd-analyze verify` (CI's unit check) and
 * `systemd-analyze security` (printed, not judged). The machine runs no systemd as PID 1, so both run
 * offline on a scratch root holding the unit, the host's own units (the targets it orders against)
 * and the two executables the unit names: verify refuses a unit whose ExecStart= does not exist.
 * That the unit's capabilities are enough to serve is test/deploy/packages.test.ts's job.
 */

const unitFile = join(repo, "contrib/systemd/centra-pxe.service");
let root: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), "unit-root-"));
  for (const dir of ["usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"])
    mkdirSync(join(root, dir), { recursive: true });
  writeFileSync(join(root, "usr/bin/centra-pxe"), "#!/bin/sh\n");
  chmodSync(join(root, "usr/bin/centra-pxe"), 0o755);
  copyFileSync("/bin/kill", join(root, "bin/kill"));
  chmodSync(join(root, "bin/kill"), 0o755);
  cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
});
after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** `systemd-analyze verify` of `text` installed as centra-pxe.service; what it says about that unit. */
function verify(text: string): { status: number | null; complaints: string[] } {
  writeFileSync(join(root, "etc/systemd/system/centra-pxe.service"), text);
  const run = spawnSync("systemd-analyze", ["verify", `--root=${root}`, "--man=no", "centra-pxe.service"], {
    encoding: "utf8",
  });
  // Verify exits 0 on a directive it ignores; what it says about the unit is what counts.
  const complaints = `${run.stdout}\n${run.stderr}`.split("\n").filter((line) => line.includes("centra-pxe.service"));
  return { status: run.status, complaints };
}

const ready = (t: TestContext) => requireBinaries(t, "systemd-analyze");

test("systemd-analyze verify accepts the unit without a single complaint", (t) => {
  if (!ready(t)) return;
  const { status, complaints } = verify(readFileSync(unitFile, "utf8"));
  assert.equal(status, 0, complaints.join("\n"));
  assert.deepEqual(complaints, []);
});

test("the check can fail: a misspelt type, an unknown directive and a missing binary are each reported", (t) => {
  if (!ready(t)) return;
  const unit = readFileSync(unitFile, "utf8");
  assert.match(verify(unit.replace("Type=notify", "Type=notfy")).complaints.join("\n"), /service type/);
  assert.match(
    verify(unit.replace("Type=notify", "Type=notify\nReadyWhen=serving")).complaints.join("\n"),
    /Unknown key/i,
  );
  assert.match(
    verify(unit.replaceAll("/usr/bin/centra-pxe", "/usr/local/bin/centra-pxe")).complaints.join("\n"),
    /is not executable|No such file/,
  );
});

test("the unit: notify, SIGHUP reload, its own user and state directory, three capabilities and no more", () => {
  const unit = readFileSync(unitFile, "utf8");
  const value = (key: string) => unit.match(new RegExp(`^${key}=(.*)$`, "m"))?.[1];
  assert.equal(value("Type"), "notify");
  assert.equal(value("ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(value("Restart"), "on-failure");
  assert.equal(value("User"), "centra-pxe");
  assert.equal(value("StateDirectory"), "centra-pxe");
  assert.equal(value("ProtectSystem"), "strict");
  assert.match(value("ExecStart") ?? "", /^\/usr\/bin\/centra-pxe serve --config \/etc\/centra-pxe\/config\.yaml$/);
  const capabilities = "CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN";
  assert.equal(value("CapabilityBoundingSet"), capabilities);
  assert.equal(value("AmbientCapabilities"), capabilities);
  // The NixOS module grants the same three: one list of privileges, two service managers.
  const nix = readFileSync(join(repo, "nix/module.nix"), "utf8").match(/CapabilityBoundingSet = \[([^\]]*)\]/)?.[1];
  assert.equal(nix?.replace(/"/g, "").trim().split(/\s+/).join(" "), capabilities);
});

test("systemd-analyze security (report only)", (t) => {
  if (!ready(t)) return;
  writeFileSync(join(root, "etc/systemd/system/centra-pxe.service"), readFileSync(unitFile, "utf8"));
  const run = spawnSync("systemd-analyze", ["security", "--offline=true", `--root=${root}`, "centra-pxe.service"], {
    encoding: "utf8",
  });
  const report = `${run.stdout}${run.stderr}`;
  for (const line of report.split("\n").filter((l) => l.startsWith("✗") || l.includes("Overall")))
    t.diagnostic(line.trimEnd());
  assert.match(report, /Overall exposure level for centra-pxe\.service: \d+\.\d/);
});
