import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type ApiServer, startApiServer } from "../support/api-server.js";
import { startIpmiSim, type IpmiSim } from "../support/ipmi-sim.js";
import { findBinary, isCI } from "../support/netns.js";
import { cliProcess } from "../support/daemon.js";

/**
 * `centra-pxe nodes … --bmc-…`, `nodes power`, `nodes bootdev`, `nodes provision --power` as an
 * operator runs them, each its own process, against a server in this process and OpenIPMI's
 * ipmi_sim. All the while, every process listing on the host is sampled: the BMC password is read
 * from a file by the CLI and by ipmitool, so no command line ever carries it.
 */

const _root = fileURLToPath(new URL("../..", import.meta.url));
const stateDir = mkdtempSync(join(tmpdir(), "power-cli-"));
let server: ApiServer | undefined;
let sim: IpmiSim | undefined;
let url = "";

before(async () => {
  const missing = ["ipmi_sim", "ipmitool"].filter((n) => findBinary(n) === undefined);
  if (missing.length > 0) {
    if (isCI) throw new Error(`missing ${missing.join(", ")}`);
    return;
  }
  sim = await startIpmiSim();
  server = await startApiServer(stateDir);
  url = `http://127.0.0.1:${server.port}`;
});

after(async () => {
  await server?.stop();
  await sim?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}) => cliProcess(args, env);

test("nodes add --bmc-…, power, bootdev, show and provision --power; the password in no process listing", {
  timeout: 5 * 60_000,
}, async (t) => {
  if (!sim || !server) return t.skip("no ipmi_sim");
  const password = sim.password;
  // Sample every process's command line while the commands run.
  let sampled = 0;
  let leaked = "";
  const sampler = setInterval(() => {
    const listing = execFileSync("ps", ["-eww", "-o", "args"], { encoding: "utf8" });
    sampled++;
    for (const line of listing.split("\n")) if (line.includes(password)) leaked = line;
  }, 200);
  t.after(() => clearInterval(sampler));

  const created = await cli(["token", "create", "--name", "ops", "--state-dir", stateDir]);
  assert.equal(created.code, 0, created.stderr);
  const env = { CENTRA_PXE_URL: url, CENTRA_PXE_TOKEN: created.stdout.trim() };
  const passwordFile = join(stateDir, "bmc-password");
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });

  const added = await cli(
    ["nodes", "add", "52:54:00:c1:00:01", "--profile", "worker", "--hostname", "rack-a1-01", "--label", "rack=a1"]
      .concat(["--bmc-type", "ipmi", "--bmc-address", sim.address, "--bmc-user", sim.username])
      .concat(["--bmc-password-file", passwordFile, "--bmc-cipher-suite", "3"]),
    env,
  );
  assert.equal(added.code, 0, added.stderr);

  const on = await cli(["nodes", "power", "rack-a1-01", "on"], env);
  assert.equal(on.code, 0, on.stderr);
  assert.equal(sim.power(), "1");
  const status = await cli(["nodes", "power", "rack-a1-01", "status"], env);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /power on/);

  const boot = await cli(["nodes", "bootdev", "rack-a1-01", "pxe", "--efi"], env);
  assert.equal(boot.code, 0, boot.stderr);
  assert.match(boot.stderr, /warning: the BMC reports legacy mode where UEFI \(efiboot\) was set/);

  const shown = await cli(["nodes", "show", "rack-a1-01"], env);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, new RegExp(`bmc\\s+ipmi admin@${sim.address.replace(/\./g, "\\.")}`));
  assert.match(shown.stdout, /boot-device/);
  assert.ok(!shown.stdout.includes(password));
  const json = await cli(["nodes", "show", "rack-a1-01", "--json"], env);
  assert.ok(!json.stdout.includes(password) && !json.stdout.includes("sealedPassword"));

  const provisioned = await cli(["nodes", "provision", "--label", "rack=a1", "--power"], env);
  assert.equal(provisioned.code, 0, provisioned.stderr);
  assert.match(provisioned.stdout, /power-cycled into its network boot/);
  const usage = await cli(["nodes", "provision", "--power"], env);
  assert.equal(usage.code, 1);

  clearInterval(sampler);
  assert.ok(sampled > 5, `ps sampled only ${sampled} times`);
  assert.equal(leaked, "", "the BMC password was on a command line");
});
