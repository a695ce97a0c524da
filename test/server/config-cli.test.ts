import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { cliArgs, repo } from "../support/daemon.js";

/**
 * The config commands as an operator types them (issue 18): `validate FILE` like `dhcpd -t -cf FILE`,
 * `config show` whose output is itself a valid config with the same effect, `config example`,
 * `serve` refusing to run on the embedded (lab) defaults, and `latest` refused as a version name.
 */

const dir = mkdtempSync(join(tmpdir(), "config-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** `centra-pxe ARGS` from the repository (tsx resolves there; it has no ./centra-pxe.yaml), no CENTRA_PXE_CONFIG. */
function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  delete env.CENTRA_PXE_CONFIG;
  const run = spawnSync(process.execPath, cliArgs(args), { cwd: repo, env, encoding: "utf8", timeout: 60_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const valid = join(repo, "testdata/config/valid.yaml");

test("validate FILE (positional) as well as --config FILE; problems exit 1, warnings exit 0", () => {
  assert.deepEqual(cli(["validate", valid]), { code: 0, stdout: `${valid}: valid\n`, stderr: "" });
  assert.equal(cli(["validate", "--config", valid]).stdout, `${valid}: valid\n`);

  const rogue = join(dir, "rogue.yaml");
  writeFileSync(rogue, "interface: eno1\nserverAddress: 192.168.1.10\n");
  const refused = cli(["validate", rogue]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stdout,
    /^.*rogue\.yaml:2:16 serverAddress: 192\.168\.1\.10 is outside the default dhcp\.subnet/,
  );

  const warned = join(dir, "warned.yaml");
  writeFileSync(warned, "http: { port: 10080 }\n");
  const warning = cli(["validate", warned]);
  assert.equal(warning.code, 0);
  assert.match(warning.stdout, /warned\.yaml:1:15 http\.port: warning: Node's fetch refuses port 10080/);
  assert.match(warning.stdout, /warned\.yaml: valid \(1 warning\)\n$/);

  const missing = cli(["validate", join(dir, "nope.yaml")]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stdout, `${join(dir, "nope.yaml")}: cannot read: no such file\n`);
});

test("config show: the effective config, defaults filled in, validates and means the same (YAML and JSON)", () => {
  const yaml = cli(["config", "show", "--config", valid]);
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.match(yaml.stdout, /^ +perMacInterval: 10s$/m, "a default is filled in, a duration in words");
  const shown = join(dir, "shown.yaml");
  writeFileSync(shown, yaml.stdout);
  assert.equal(cli(["validate", shown]).code, 0);
  const effective = parseConfig(readFileSync(valid, "utf8"));
  assert.deepEqual(parseConfig(yaml.stdout), effective);

  const json = cli(["config", "show", "--config", valid, "--json"]);
  assert.deepEqual(parseConfig(json.stdout), effective);
});

test("config example writes a commented config that validates, and never overwrites one", () => {
  const file = join(dir, "example.yaml");
  assert.equal(cli(["config", "example", file]).code, 0);
  assert.match(readFileSync(file, "utf8"), /^# centra-pxe config/);
  assert.deepEqual(cli(["validate", file]), { code: 0, stdout: `${file}: valid\n`, stderr: "" });
  const again = cli(["config", "example", file]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /exists already; not overwriting it/);
});

test("serve without a config file refuses: the embedded defaults are the lab's", () => {
  const serve = cli(["serve"]);
  assert.equal(serve.code, 1);
  assert.match(serve.stderr, /no config file: pass --config FILE.*the embedded defaults are for `centra-pxe lab`/);
});

test("images add --version latest is refused, saying why", () => {
  const stateDir = join(dir, "state");
  const init = cli(["init", "--state-dir", stateDir]);
  assert.equal(init.code, 0, init.stderr);
  writeFileSync(join(dir, "k"), "kernel");
  writeFileSync(join(dir, "i"), "initrd");
  const add = (version: string) =>
    cli(
      ["images", "add", "nixos", "--kernel", join(dir, "k"), "--initrd", join(dir, "i")].concat([
        "--version",
        version,
        "--state-dir",
        stateDir,
      ]),
    );
  const refused = add("latest");
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /version "latest" is not valid: .*not "latest" \(\/boot\/nixos\/latest\/ means current\)/,
  );
  assert.equal(add("24.11").code, 0, "an ordinary version is still accepted");
});
