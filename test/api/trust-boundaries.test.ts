import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  cliFromClient,
  curlFromAddress,
  runCli,
  startDaemon,
  type RunningDaemon,
  prepareState,
} from "../support/daemon.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";

/**
 * Issue 10 items 1, 2 and 4 as the attacker did them: `centra-pxe serve` (DHCP server mode) in its
 * own namespace; in the client namespace the machine's address (.2, its DHCP reservation) and a
 * stranger's second address (.3) on the same link. The stranger reads the API, asks for another
 * machine's install script, claims a known node's UUID over HTTP and DHCP option 97, and floods
 * the inventory with new MACs.
 */

const MACHINE = "52:54:00:77:00:01";
const VICTIM = "52:54:00:77:00:02";
const VICTIM_UUID = "4c4c4544-0077-1000-8000-000000000002";
const HIJACK_HTTP = "52:54:00:77:00:a1";
const HIJACK_DHCP = "52:54:00:77:00:a2";
let link: TestLink;
let dir: string;
let daemon: RunningDaemon | undefined;
let env: Record<string, string>;
let strangerIp: string;
const net = () => link.serverIp.replace(/\.1$/, "");

const remoteCli = (args: string[]) => cliFromClient(link, env, args);
/** curl from one of the client namespace's addresses; `-i` for the status line and headers. */
const curlFrom = (source: string, path: string, ...args: string[]) => curlFromAddress(link, source, path, ...args);
const script = (source: string, mac: string, extra = "", ...args: string[]) =>
  curlFrom(
    source,
    `/boot/ipxe/machine.ipxe?mac=${mac.replace(/:/g, "-")}&buildarch=x86_64&platform=pcbios&uuid=${extra}&serial=`,
    ...args,
  );
const events = (query: string) =>
  JSON.parse(
    curlFrom(link.clientIp, `/api/v1/events?${query}`, "-H", `authorization: Bearer ${env.CENTRA_PXE_TOKEN}`),
  ) as { events: { kind: string; nodeId: string; details: Record<string, unknown> }[] };
const node = (ref: string) =>
  JSON.parse(remoteCli(["nodes", "show", ref, "--json"])) as {
    id: string;
    macs: string[];
    state: string;
    provisionDeadline?: string;
    events: { kind: string }[];
  };

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink();
  strangerIp = `${link.serverIp.replace(/\.1$/, "")}.3`;
  link.inClient("ip", ["addr", "add", `${strangerIp}/24`, "dev", link.clientIf]);
  dir = mkdtempSync(join(tmpdir(), "trust-"));
  const config = join(dir, "config.yaml");
  // A sighting budget small enough that (d)'s flood overflows it however slowly a loaded machine
  // sends it (the defaults, 200 then 50/s, were outrun by a flood that took 12 s).
  writeFileSync(
    config,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
dhcp:
  subnet: ${net()}.0
  netmask: 255.255.255.0
  range: { start: ${net()}.100, end: ${net()}.150 }
  leaseTime: 10m
tftp: { enabled: false }
provisioning: { timeout: 10m, sightingsPerSecond: 2, sightingBurst: 50 }
`,
  );
  prepareState(config, { kernel: Buffer.alloc(64 * 1024, 7), initrd: Buffer.alloc(32 * 1024, 9) });
  const token = runCli(["token", "create", "--name", "trust-test", "--config", config]).trim();
  env = { CENTRA_PXE_URL: `http://${link.serverIp}`, CENTRA_PXE_TOKEN: token };
  daemon = await startDaemon(link, config);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("(a) an anonymous stranger cannot list the machines waiting to install", { timeout: 60_000 }, (t) => {
  if (!requireBinaries(t, "curl")) return;
  const anonymous = curlFrom(strangerIp, "/api/v1/nodes?state=provisioning", "-i");
  assert.match(anonymous, /^HTTP\/1\.1 401/);
  assert.match(anonymous, /www-authenticate: Bearer/i);
  assert.match(curlFrom(strangerIp, "/health", "-i"), /^HTTP\/1\.1 200/, "/health stays open");
  assert.match(curlFrom(strangerIp, "/metrics", "-i"), /^HTTP\/1\.1 200/, "/metrics is open by default");
});

test("(b) only the machine gets its callback token: one per attempt, a fixed deadline, HEAD creates nothing, a wrong MAC burns nothing", {
  timeout: 3 * 60_000,
}, (t) => {
  if (!requireBinaries(t, "curl", "busybox")) return;
  // The machine's reserved address is the client namespace's .2.
  remoteCli(["nodes", "add", MACHINE, "--profile", "worker", "--hostname", "machine-01", "--ip", link.clientIp]);
  remoteCli(["nodes", "provision", "machine-01"]);
  const before = node("machine-01");
  const eventCount = events("after=0&limit=500").events.length;

  // HEAD, from anyone, creates nothing: no token, no event, no node.
  assert.match(script(strangerIp, MACHINE, "", "-I"), /^HTTP\/1\.1 200/);
  assert.match(script(link.clientIp, MACHINE, "", "-I"), /^HTTP\/1\.1 200/);
  assert.match(script(strangerIp, "52:54:00:77:00:ff", "", "-I"), /^HTTP\/1\.1 200/);
  assert.equal(events("after=0&limit=500").events.length, eventCount, "HEAD wrote no event");
  assert.equal(JSON.parse(remoteCli(["nodes", "list", "--json"])).length, 1, "HEAD created no node");

  // The stranger asks for the machine's script: the plan, without the token.
  const stolen = script(strangerIp, MACHINE);
  assert.match(stolen, /kernel http:\/\/\S+\/boot\/images\/nixos\/24\.11\/kernel /);
  assert.doesNotMatch(stolen, /centra\.token=/);
  assert.match(stolen, /centra\.token-withheld=not-the-machine-address/);
  // The same plan through the Secure Boot chain's per-machine grub config (also served over TFTP):
  // the same decision, so no token for the stranger there either.
  const stolenGrub = curlFrom(strangerIp, `/boot/grub/machine/x86_64/${MACHINE}.cfg`);
  assert.match(stolenGrub, /linux\s+\S*\/boot\/images\/nixos\/24\.11\/kernel /);
  assert.doesNotMatch(stolenGrub, /centra\.token=/);
  assert.match(stolenGrub, /centra\.token-withheld=not-the-machine-address/);
  assert.equal(events("kind=install-boot").events.length, 0, "no token was issued");
  assert.ok(
    events("kind=token-withheld").events.some((e) => e.details.remote === strangerIp),
    "the refusal is an event naming the stranger",
  );

  // The machine itself: a token; refetches get the same one and do not move the deadline.
  const token = /centra\.token=([A-Za-z0-9_-]+)/.exec(script(link.clientIp, MACHINE))?.[1];
  assert.ok(token);
  const first = node("machine-01").provisionDeadline;
  assert.notEqual(first, undefined);
  for (let i = 0; i < 3; i++)
    assert.equal(
      /centra\.token=([A-Za-z0-9_-]+)/.exec(script(link.clientIp, MACHINE))?.[1],
      token,
      "one live token per attempt",
    );
  assert.equal(node("machine-01").provisionDeadline, first, "no fetch pushes the deadline back");
  assert.equal(events("kind=install-boot").events.length, 1);
  assert.ok(before.provisionDeadline !== undefined);

  // The stranger, holding the token somehow, calls back with another MAC: refused, and the token lives on.
  const wrong = curlFrom(strangerIp, `/api/v1/nodes/callback?mac=52:54:00:77:00:99&token=${token}`, "-i", "-X", "POST");
  assert.match(wrong, /^HTTP\/1\.1 403/);
  assert.match(wrong, /other-node/);
  // The installed system may call from another address (its own DHCP lease): the token and MAC decide.
  const done = curlFrom(link.clientIp, `/api/v1/nodes/callback?mac=${MACHINE}&token=${token}`, "-i", "-X", "POST");
  assert.match(done, /^HTTP\/1\.1 200/, "the wrong-MAC try did not burn the token");
  assert.equal(node("machine-01").state, "provisioned");
});

test("(c) a new MAC claiming a known node's UUID gets nothing of the node, over HTTP and DHCP option 97; nodes adopt approves it", {
  timeout: 3 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "curl", "udhcpc")) return;
  remoteCli([
    "nodes",
    "add",
    VICTIM,
    "--profile",
    "worker",
    "--hostname",
    "victim-01",
    "--ip",
    `${net()}.60`,
    "--uuid",
    VICTIM_UUID,
  ]);
  const victim = node("victim-01");

  // Over HTTP: the stranger's MAC with the victim's UUID in the query.
  const hijack = script(strangerIp, HIJACK_HTTP, VICTIM_UUID);
  assert.doesNotMatch(hijack, /victim-01/, "not the victim's script");
  assert.match(hijack, /Centra Cloud - Bare-Metal Provisioning/, "a stranger gets the menu");
  assert.deepEqual(node("victim-01").macs, [VICTIM]);

  // Over DHCP: udhcpc with the stranger's MAC, a PXE vendor class and option 97 = the victim's UUID.
  const ownMac = /link\/ether (\S+)/.exec(link.inClient("ip", ["link", "show", "dev", link.clientIf]))![1]!;
  link.inClient("ip", ["link", "set", "dev", link.clientIf, "address", HIJACK_DHCP]);
  let out: string;
  try {
    out = link.inClient("sh", [
      "-c",
      `timeout 30 udhcpc -i ${link.clientIf} -n -q -f -O hostname -s /bin/true -V PXEClient:Arch:00000:UNDI:002001 -x 0x61:00${VICTIM_UUID.replace(/-/g, "")} 2>&1 || true`,
    ]);
  } finally {
    // Back to the MAC the server's neighbour cache knows, so the HTTP requests below reach us.
    link.inClient("ip", ["link", "set", "dev", link.clientIf, "address", ownMac]);
  }
  const leased = /lease of (\S+) obtained/.exec(out)?.[1];
  assert.ok(leased, out);
  assert.notEqual(leased, `${net()}.60`, "not the victim's reserved address");
  assert.doesNotMatch(out, /victim-01/);
  assert.deepEqual(node("victim-01").macs, [VICTIM], "the network added no MAC");

  const deadline = Date.now() + 10_000;
  let conflicts: string[] = [];
  while (Date.now() < deadline) {
    conflicts = events(`node=${victim.id}&kind=identity-conflict`).events.map((e) => String(e.details.mac));
    if (conflicts.includes(HIJACK_DHCP)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(
    conflicts.sort(),
    [HIJACK_HTTP, HIJACK_DHCP].sort(),
    "one conflict event per MAC, on the node it claimed",
  );

  // The admin decides it is the same machine (a new NIC): adopt, and that MAC now boots as the node.
  assert.match(
    remoteCli(["nodes", "adopt", "victim-01", HIJACK_HTTP]),
    new RegExp(`now has ${VICTIM}, ${HIJACK_HTTP}`),
  );
  assert.match(script(strangerIp, HIJACK_HTTP), /centra\.hostname=victim-01/);
});

test("(d) a flood of new MACs from the stranger: the daemon keeps answering, the excess is dropped and counted", {
  timeout: 3 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const urls: string[] = [];
  for (let i = 0; i < 600; i++) {
    const mac = `52-54-00-99-${(i >> 8).toString(16).padStart(2, "0")}-${(i & 255).toString(16).padStart(2, "0")}`;
    urls.push(
      `http://${link.serverIp}/boot/ipxe/machine.ipxe?mac=${mac}&buildarch=x86_64&platform=pcbios&uuid=&serial=`,
    );
  }
  const list = join(dir, "flood.txt");
  writeFileSync(list, urls.map((u) => `url = "${u}"\noutput = "/dev/null"\n`).join(""));
  const flood = link.spawnInClient("curl", [
    "-sS",
    "--interface",
    strangerIp,
    "--parallel",
    "--parallel-max",
    "50",
    "--max-time",
    "60",
    "-K",
    list,
  ]);
  const exited = new Promise<void>((resolve) => flood.once("exit", () => resolve()));
  // While it runs, /health answers promptly.
  const slowest = await new Promise<number>((resolve) => {
    let worst = 0;
    const probe = async () => {
      const started = Date.now();
      const status = link.inClient("curl", [
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        `http://${link.serverIp}/health`,
      ]);
      assert.equal(status, "200");
      worst = Math.max(worst, Date.now() - started);
    };
    void (async () => {
      for (let i = 0; i < 5; i++) await probe();
      resolve(worst);
    })();
  });
  await exited;
  assert.ok(slowest < 5_000, `/health took ${slowest} ms during the flood`);
  await new Promise((r) => setTimeout(r, 500));
  const metrics = curlFrom(link.clientIp, "/metrics");
  const dropped = Number(/^centra_pxe_sightings_dropped_total (\d+)/m.exec(metrics)?.[1]);
  const recorded = Number(/^centra_pxe_sightings_recorded_total (\d+)/m.exec(metrics)?.[1]);
  assert.ok(dropped > 0, `drops are counted (${dropped})`);
  const discovered = JSON.parse(remoteCli(["nodes", "list", "--state", "discovered", "--json"])) as unknown[];
  assert.ok(
    discovered.length < 600,
    `the budget held: ${discovered.length} of 600 MACs recorded (recorded ${recorded}, dropped ${dropped})`,
  );
});
