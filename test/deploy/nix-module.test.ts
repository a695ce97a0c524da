import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { cliArgs, repo } from "../support/daemon.js";
import { requireBinaries } from "../support/netns.js";

/**
 * nix/module.nix evaluated by a real `nix-instantiate` (Debian's nix-bin) against nix/tests/stub-lib.nix,
 * since nixpkgs is not reachable here (nix/tests/eval.nix resolves options the way the module system does
 * for these types). The rendered /etc/centra-pxe/config.yaml goes through `centra-pxe validate`.
 * nix/tests/module.nix, a nixosTest, is the real thing for machines with nixpkgs; it is not run here.
 */

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "nix-module-"));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Evaluation {
  enabled: boolean;
  configYaml: string | null;
  service: {
    serviceConfig: Record<string, unknown>;
    reloadTriggers: string[];
    restartTriggers: string[];
    wantedBy: string[];
  } | null;
  firewall: { interfaces: Record<string, { allowedUDPPorts: number[]; allowedTCPPorts: number[] }> } | null;
  users: { users: Record<string, { isSystemUser: boolean; group: string }> } | null;
  tmpfiles: string[];
  failedAssertions: string[];
}

/** `configuration` is a Nix expression (a NixOS configuration's `services.centra-pxe-server` part). */
function evaluate(configuration: string): Evaluation {
  // A private store and state directory: evaluation writes nothing to /nix, which need not exist.
  const env = {
    ...process.env,
    NIX_STATE_DIR: join(dir, "nix/state"),
    NIX_STORE_DIR: join(dir, "nix/store"),
    NIX_LOG_DIR: join(dir, "nix/log"),
    NIX_CONF_DIR: join(dir, "nix"),
  };
  const expression = `import ${join(repo, "nix/tests/eval.nix")} { configuration = ${configuration}; }`;
  const out = execFileSync(
    "nix-instantiate",
    ["--option", "build-users-group", "", "--eval", "--strict", "--json", "-E", expression],
    { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  return JSON.parse(out) as Evaluation;
}

function evaluationError(configuration: string): string {
  try {
    evaluate(configuration);
  } catch (error) {
    return String((error as { stderr?: string }).stderr);
  }
  assert.fail("the evaluation should have failed");
}

function validate(yaml: string, name: string): { status: number | null; out: string } {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  const run = spawnSync(process.execPath, cliArgs(["validate", "--config", file]), { encoding: "utf8", cwd: repo });
  return { status: run.status, out: run.stdout + run.stderr };
}

const ready = (t: TestContext) => requireBinaries(t, "nix-instantiate");
const seed = `import ${join(repo, "nix/tests/seed-config.nix")}`;

test("the seed's own configuration renders a config `centra-pxe validate` accepts, with every value in place", (t) => {
  if (!ready(t)) return;
  const result = evaluate(seed);
  assert.equal(result.enabled, true);
  assert.deepEqual(result.failedAssertions, []);
  const checked = validate(result.configYaml!, "seed.yaml");
  assert.equal(checked.status, 0, checked.out);
  assert.deepEqual(JSON.parse(result.configYaml!), {
    interface: "eth0",
    serverAddress: "10.0.100.10",
    stateDir: "/var/lib/centra-pxe",
    dhcp: {
      subnet: "10.0.100.0",
      netmask: "255.255.255.0",
      broadcast: "10.0.100.255",
      range: { start: "10.0.100.100", end: "10.0.100.200" },
      router: "10.0.100.1",
    },
    nodes: {
      "52:54:00:12:34:56": { profile: "control-plane", hostname: "control-plane-01", ipAddress: "10.0.100.50" },
    },
  });
});

test("the service: notify, the package's binary on the rendered config, SIGHUP reload, a user, three capabilities", (t) => {
  if (!ready(t)) return;
  const { service, users, firewall } = evaluate(seed);
  const unit = service!.serviceConfig;
  assert.equal(unit.Type, "notify");
  assert.match(
    String(unit.ExecStart),
    /^\/nix\/store\/\w+-centra-pxe-0\.1\.0\/bin\/centra-pxe serve --config \/etc\/centra-pxe\/config\.yaml$/,
  );
  assert.match(
    String(unit.ExecStartPre),
    / init --config \/etc\/centra-pxe\/config\.yaml --bootloaders \/nix\/store\/\w+-ipxe-/,
  );
  assert.match(String(unit.ExecReload), /\/bin\/kill -HUP \$MAINPID$/);
  assert.equal(unit.Restart, "on-failure");
  assert.equal(unit.User, "centra-pxe");
  assert.equal(unit.StateDirectory, "centra-pxe");
  assert.equal(unit.ProtectSystem, "strict");
  assert.deepEqual(unit.CapabilityBoundingSet, ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_NET_ADMIN"]);
  assert.deepEqual(unit.AmbientCapabilities, unit.CapabilityBoundingSet);
  assert.deepEqual(service!.wantedBy, ["multi-user.target"]);
  // nixos-rebuild switch reloads on a changed config: the trigger is the rendered text itself.
  assert.equal(service!.reloadTriggers[0], evaluate(seed).configYaml);
  assert.equal(users!.users["centra-pxe"]!.isSystemUser, true);
  assert.deepEqual(firewall!.interfaces, {}, "no port opened unless openFirewall");
});

test("settings merge over the typed options; the firewall opens the configured ports on the interface only", (t) => {
  if (!ready(t)) return;
  const result = evaluate(`(${seed}) // {
    services.centra-pxe-server = (${seed}).services.centra-pxe-server // {
      openFirewall = true;
      settings = {
        stateDir = "/var/lib/pxe-boot";
        http.port = 8080;
        dhcp = { mode = "proxy"; leaseTime = "30m"; };
        profiles = {
          control-plane = { image = "nixos"; };
          worker = { image = "nixos"; cmdline = "console=ttyS0"; };
        };
        provisioning.timeout = "45m";
      };
    };
  }`);
  assert.deepEqual(result.failedAssertions, []);
  const rendered = JSON.parse(result.configYaml!) as Record<string, Record<string, unknown>>;
  assert.equal(rendered.dhcp!.subnet, "10.0.100.0", "the typed dhcp keys survive the merge");
  assert.equal(rendered.dhcp!.mode, "proxy");
  assert.equal(rendered.http!.port, 8080);
  const checked = validate(result.configYaml!, "settings.yaml");
  assert.equal(checked.status, 0, checked.out);
  assert.deepEqual(result.firewall!.interfaces.eth0, { allowedUDPPorts: [67, 4011, 69], allowedTCPPorts: [8080] });
  // The seed's state directory is opened in the sandbox and created for the service's user.
  assert.deepEqual(result.service!.serviceConfig.ReadWritePaths, ["/var/lib/pxe-boot"]);
  assert.equal(result.service!.serviceConfig.StateDirectory, undefined);
  assert.deepEqual(result.tmpfiles, ["d /var/lib/pxe-boot 0750 centra-pxe centra-pxe - -"]);
});

test("what validate refuses in settings is caught before it reaches a server, with its location", (t) => {
  if (!ready(t)) return;
  const result = evaluate(`{ services.centra-pxe-server = { enable = true; settings.http.port = 70000; }; }`);
  const checked = validate(result.configYaml!, "bad.yaml");
  assert.equal(checked.status, 1);
  assert.match(checked.out, /bad\.yaml:1:\d+ http\.port: /);
});

test("settings may not contradict an option, and unknown options or wrong types fail the evaluation", (t) => {
  if (!ready(t)) return;
  const twice = evaluate(`{ services.centra-pxe-server = { enable = true; settings.interface = "eth1"; }; }`);
  assert.match(twice.failedAssertions.join("\n"), /settings must not set interface/);
  const twiceDhcp = evaluate(
    `{ services.centra-pxe-server = { enable = true; settings.dhcp.router = "10.0.100.2"; }; }`,
  );
  assert.equal(twiceDhcp.failedAssertions.length, 1);
  assert.match(
    evaluationError(`{ services.centra-pxe-server = { enable = true; interfaces = "eth0"; }; }`),
    /option `services\.centra-pxe-server\.interfaces' does not exist/,
  );
  assert.match(
    evaluationError(`{ services.centra-pxe-server = { enable = true; nodes."52:54:00:00:00:01".hostname = "x"; }; }`),
    /nodes\.52:54:00:00:00:01\.profile' is used but not defined/,
  );
  assert.match(
    evaluationError(`{ services.centra-pxe-server = { enable = true; serverAddress = 10; }; }`),
    /serverAddress' is not of type `str'/,
  );
});

test("disabled, the module adds nothing to the system", (t) => {
  if (!ready(t)) return;
  const result = evaluate(`{ services.centra-pxe-server.interface = "eth1"; }`);
  assert.equal(result.enabled, false);
  assert.equal(result.service, null);
});
