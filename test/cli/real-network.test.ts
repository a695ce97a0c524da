import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { cliArgs, repo, waitFor } from "../support/daemon.js";
import { createLink, requireBinaries, sh, type TestLink } from "../support/netns.js";
import { checkoutReadableBy } from "../support/users.js";

/**
 * README "Run it on a real network", followed step by step in a clean namespace pair: validate, init
 * and images add as the service user, `serve` as that user with CAP_NET_BIND_SERVICE and no other
 * capability (the README says the rest are optional on Debian 12's kernel), doctor from the server's
 * host, a real DHCP client across the link, then the read commands as yet another user and `nodes`
 * finding the server from the config alone.
 */

let link: TestLink | undefined;
let dir: string | undefined;
let serving: ReturnType<TestLink["spawnInServer"]> | undefined;

after(() => {
  serving?.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `centra-pxe ARGS` as `user` (runuser), optionally inside the server's namespace; stdout, or throws with stderr. */
function cliAs(user: string, args: string[], env: Record<string, string> = {}): string {
  const command = ["runuser", "-u", user, "--", "env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
  const inNs = link?.serverNs ? ["ip", "netns", "exec", link.serverNs] : [];
  const full = [...inNs, ...command, process.execPath, ...cliArgs(args)];
  return sh(full[0]!, full.slice(1));
}

test("the README's real-network steps, as a service user with CAP_NET_BIND_SERVICE only", {
  timeout: 5 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "udhcpc", "runuser", "setpriv", "ip")) return;
  if (!checkoutReadableBy("nobody") || !checkoutReadableBy("daemon"))
    return t.skip(`nobody/daemon cannot read ${repo}`);
  const pair = createLink({ clientIp: null });
  link = pair;
  dir = mkdtempSync(join(tmpdir(), "real-network-"));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, "state");
  // What systemd's StateDirectory= does: the directory exists, owned by the service user.
  mkdirSync(stateDir);
  chownSync(stateDir, Number(sh("id", ["-u", "nobody"]).trim()), Number(sh("id", ["-g", "nobody"]).trim()));
  const net = link.serverIp.replace(/\.1$/, "");
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${stateDir}
dhcp:
  subnet: ${net}.0
  netmask: 255.255.255.0
  range: { start: ${net}.100, end: ${net}.200 }
  router: ${link.serverIp}
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: ${net}.50 }
`,
  );
  writeFileSync(join(dir, "bzImage"), Buffer.alloc(100_000, 7));
  writeFileSync(join(dir, "initrd"), Buffer.alloc(200_000, 9));

  assert.match(cliAs("root", ["validate", "--config", config]), /: valid\n$/);
  assert.match(cliAs("nobody", ["init", "--config", config]), /state directory .* ready/);
  assert.match(
    cliAs("nobody", [
      "images",
      "add",
      "nixos",
      "--kernel",
      join(dir, "bzImage"),
      "--initrd",
      join(dir, "initrd"),
      "--version",
      "24.11",
      "--config",
      config,
    ]),
    /added nixos 24\.11/,
  );

  const caps = "+net_bind_service";
  serving = link.spawnInServer(
    "setpriv",
    [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      `--inh-caps=${caps}`,
      `--ambient-caps=${caps}`,
      process.execPath,
      ...cliArgs(["serve", "--config", config]),
    ],
    { cwd: repo },
  );
  let log = "";
  serving.stdout!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  serving.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  await waitFor("serve to start", () => log.includes('"msg":"serving"'), {
    ms: 60_000,
    context: () => log.slice(-3000),
  });

  const doctor = JSON.parse(cliAs("root", ["doctor", "--config", config, "--json"])) as {
    ok: boolean;
    checks: { name: string; ok: boolean }[];
  };
  assert.equal(doctor.ok, true, JSON.stringify(doctor.checks));
  assert.ok(doctor.checks.some((c) => c.name === `dhcp on ${pair.serverIf}`));

  const lease = link.inClient("sh", ["-c", `timeout 30 udhcpc -i ${link.clientIf} -n -q -f -s /bin/true 2>&1`]);
  assert.match(lease, new RegExp(`lease of ${net.replace(/\./g, "\\.")}\\.\\d+ obtained from ${link.serverIp}`));

  // Another unprivileged user reads the service user's state while it serves: read-only, no writes needed.
  const leases = JSON.parse(cliAs("daemon", ["leases", "--config", config, "--json"])) as { status: string }[];
  assert.deepEqual(
    leases.map((l) => l.status),
    ["active"],
  );

  // nodes finds the server from the config alone: http://serverAddress (port 80).
  const token = cliAs("nobody", ["token", "create", "--config", config]).trim();
  const listed = cliAs("root", ["nodes", "list", "--config", config, "--json"], { CENTRA_PXE_TOKEN: token });
  const nodes = JSON.parse(listed) as { hostname: string }[];
  assert.deepEqual(
    nodes.map((n) => n.hostname),
    ["control-plane-01"],
  );
  assert.doesNotMatch(log, /"level":(50|60)/, "no errors in the server log");
});
