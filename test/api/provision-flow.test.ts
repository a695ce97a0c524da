import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cliFromClient, runCli, startDaemon, type RunningDaemon, prepareState } from "../support/daemon.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";

/**
 * The provisioning lifecycle through the whole daemon: `centra-pxe serve` in its own namespace;
 * from a client namespace the operator's CLI adds and provisions a node, curl plays iPXE, and
 * busybox wget calls back exactly as the lab's installer initrd does (src/lab/initrd.ts). What the
 * lab adds on top is a real VM doing the iPXE part.
 */

const MAC = "52:54:00:66:00:01";
let link: TestLink;
let dir: string;
let daemon: RunningDaemon | undefined;
let env: Record<string, string>;

/** The CLI from the client namespace, where the server's address is reachable. */
const remoteCli = (args: string[]) => cliFromClient(link, env, args);
const machineScript = (platform: "pcbios" | "efi") =>
  link.inClient("curl", [
    "-sS",
    "--max-time",
    "10",
    `http://${link.serverIp}/boot/ipxe/machine.ipxe?mac=${MAC.replace(/:/g, "-")}&buildarch=x86_64&platform=${platform}&uuid=&serial=`,
  ]);

/**
 * The lab initrd's callback: busybox wget with --post-data and -S for the status line. Without its
 * `-T 10`: Debian 12's busybox-static wget segfaults on the host whenever -T is given (its timer
 * path; it works under strace), so coreutils `timeout` bounds it instead.
 */
function wgetCallback(api: string, token: string): string {
  const url = `${api}/nodes/callback?mac=${MAC}&token=${token}`;
  return link.inClient("sh", [
    "-c",
    `timeout 15 busybox wget -S -O /dev/null --post-data "mac=${MAC}&token=${token}" "${url}" 2>&1 || true`,
  ]);
}

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink();
  dir = mkdtempSync(join(tmpdir(), "provision-flow-"));
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
dhcp: { mode: off }
tftp: { enabled: false }
# DHCP is off here, so nothing can vouch for the machine's address: the escape hatch hands the
# callback token to curl anyway (test/api/trust-boundaries.test.ts covers the default).
provisioning: { timeout: 10m, installTokenToAnyAddress: true }
`,
  );
  prepareState(config, { kernel: Buffer.alloc(64 * 1024, 7), initrd: Buffer.alloc(32 * 1024, 9) });
  const token = runCli(["token", "create", "--name", "flow-test", "--config", config]).trim();
  env = { CENTRA_PXE_URL: `http://${link.serverIp}`, CENTRA_PXE_TOKEN: token };
  daemon = await startDaemon(link, config);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("add → provision → install script with a token → busybox wget callback → provisioned → local disk", {
  timeout: 3 * 60_000,
}, (t) => {
  if (!requireBinaries(t, "curl", "busybox")) return;

  const added = JSON.parse(
    remoteCli(["nodes", "add", MAC, "--profile", "worker", "--hostname", "worker-66", "--json"]),
  ) as { id: string; state: string };
  assert.equal(added.state, "ready");
  assert.match(remoteCli(["nodes", "provision", "worker-66"]), /is provisioning/);

  const install = machineScript("pcbios");
  assert.match(install, /kernel http:\/\/\S+\/boot\/images\/nixos\/24\.11\/kernel .*centra\.hostname=worker-66/);
  const api = /centra\.api=(\S+)/.exec(install)?.[1];
  const token = /centra\.token=([A-Za-z0-9_-]+)/.exec(install)?.[1];
  assert.equal(api, `http://${link.serverIp}/api/v1`);
  assert.ok(token, install);

  assert.match(wgetCallback(api, token), /HTTP\/1\.1 200/);
  const shown = JSON.parse(remoteCli(["nodes", "show", "worker-66", "--json"])) as {
    state: string;
    events: { kind: string; toState?: string }[];
  };
  assert.equal(shown.state, "provisioned");
  assert.deepEqual(
    shown.events.filter((e) => e.kind === "transition").map((e) => e.toState),
    ["provisioning", "provisioned"],
  );

  assert.match(wgetCallback(api, token), /HTTP\/1\.1 403/, "the token works once");

  const bios = machineScript("pcbios");
  assert.match(bios, /sanboot --no-describe --drive 0x80/);
  assert.doesNotMatch(bios, /^kernel /m, "the next boot downloads no kernel");
  assert.match(machineScript("efi"), /^exit \|\|$/m);
});

test("SIGTERM still stops cleanly with the provisioning part running", { timeout: 60_000 }, async (t) => {
  if (!daemon) return t.skip("needs root for network namespaces");
  const server = daemon.process;
  const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
  server.kill("SIGTERM");
  assert.equal(await exited, 0);
  assert.match(daemon.log(), /"service":"provisioning","msg":"stopped"/);
});
