import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BootAttemptView } from "../../src/timeline/attempt.js";
import { cliArgs, repo, runCli, startDaemon, type RunningDaemon, prepareState } from "../support/daemon.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";
import { CLIENT_SCRIPT } from "../dhcp/harness.js";

/**
 * The boot timeline through the whole daemon, from real clients in a second namespace: busybox
 * udhcpc plays the PXE ROM's DHCP (vendor class PXEClient), curl its TFTP read of the bootloader
 * and iPXE's HTTP walk, then the installer's callback. One attempt must join what DHCP, TFTP, HTTP
 * and the lifecycle saw, by the address DHCP leased. Then a stranger from a second address sprays
 * DHCP and HTTP with random MACs: the timeline stays within its caps, and nothing of it is read
 * without a token.
 */

const MAC = "52:54:00:71:00:01";
const STRANGERS = 20;
let link: TestLink;
let dir: string;
let daemon: RunningDaemon | undefined;
let token: string;
let base: string;

const inClient = (cmd: string, args: string[]) => link.inClient(cmd, args);
/** curl from the operator's (and later the stranger's) address, `.7`, beside the machine's leased one. */
const curl = (...args: string[]) => inClient("curl", ["-sS", "--max-time", "20", ...args]);
/** curl as the machine: from the address DHCP leased it. */
const machineCurl = (...args: string[]) => curl("--interface", `${base}.50`, ...args);
const api = (path: string, auth = true) =>
  curl(
    "-w",
    "\n%{http_code}",
    ...(auth ? ["-H", `authorization: Bearer ${token}`] : []),
    `http://${link.serverIp}/api/v1${path}`,
  );
function apiJson<T>(path: string): T {
  const out = api(path);
  const status = out.slice(out.lastIndexOf("\n") + 1);
  assert.equal(status, "200", `${path}: ${out}`);
  return JSON.parse(out.slice(0, out.lastIndexOf("\n"))) as T;
}

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink({ clientIp: null });
  base = link.serverIp.split(".").slice(0, 3).join(".");
  dir = mkdtempSync(join(tmpdir(), "boot-timeline-"));
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
dhcp:
  subnet: ${base}.0
  netmask: 255.255.255.0
  range: { start: ${base}.100, end: ${base}.250 }
provisioning: { timeout: 10m }
timeline: { strangers: ${STRANGERS} }
nodes:
  "${MAC}": { profile: worker, hostname: worker-71, ipAddress: ${base}.50 }
`,
  );
  prepareState(config, { kernel: Buffer.alloc(256 * 1024, 7), initrd: Buffer.alloc(128 * 1024, 9) });
  token = runCli(["token", "create", "--name", "timeline-test", "--config", config]).trim();
  daemon = await startDaemon(link, config);
  inClient("ip", ["addr", "add", `${base}.7/24`, "dev", link.clientIf]);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("one attempt joins DHCP, TFTP, HTTP and the callback by the leased address; verdict installed", {
  timeout: 3 * 60_000,
}, (t) => {
  if (!requireBinaries(t, "curl", "udhcpc", "busybox")) return;
  // POST through curl: the node installs on its next boot.
  const out = curl(
    "-X",
    "POST",
    "-H",
    `authorization: Bearer ${token}`,
    `http://${link.serverIp}/api/v1/nodes/worker-71/provision`,
  );
  assert.match(out, /"state":"provisioning"/);

  // The ROM's DHCP: PXEClient vendor class, the node's MAC, its reserved address.
  inClient("ip", ["link", "set", link.clientIf, "address", MAC]);
  const result = join(dir, "udhcpc.txt");
  inClient("env", [
    `CLIENT_RESULT=${result}`,
    "udhcpc",
    "-f",
    "-q",
    "-n",
    "-i",
    link.clientIf,
    "-s",
    CLIENT_SCRIPT,
    "-V",
    "PXEClient:Arch:00000:UNDI:002001",
    "-t",
    "5",
    "-T",
    "2",
  ]);
  assert.match(inClient("ip", ["-4", "addr", "show", link.clientIf]), new RegExp(`${base}\\.50/`));

  // The bootloader over TFTP, then iPXE's HTTP walk.
  machineCurl("-o", "/dev/null", `tftp://${link.serverIp}/undionly.kpxe`);
  machineCurl("-o", "/dev/null", `http://${link.serverIp}/boot/ipxe/boot.ipxe`);
  const script = machineCurl(
    `http://${link.serverIp}/boot/ipxe/machine.ipxe?mac=${MAC.replace(/:/g, "-")}&buildarch=i386&platform=pcbios&uuid=&serial=`,
  );
  const kernel = /^kernel (\S+)/m.exec(script)?.[1];
  const initrd = /^initrd --name initrd (\S+)/m.exec(script)?.[1];
  const callbackToken = /centra\.token=([A-Za-z0-9_-]+)/.exec(script)?.[1];
  assert.ok(kernel && initrd && callbackToken, script);
  machineCurl("-o", "/dev/null", kernel);
  machineCurl("-o", "/dev/null", initrd);
  assert.match(
    machineCurl("-X", "POST", `http://${link.serverIp}/api/v1/nodes/callback?mac=${MAC}&token=${callbackToken}`),
    /"ok":true/,
  );

  const { boots } = apiJson<{ boots: BootAttemptView[] }>("/nodes/worker-71/boots");
  assert.equal(boots.length, 1, JSON.stringify(boots));
  const [summary] = boots;
  assert.equal(summary!.verdict, "installed", summary!.reason);
  assert.equal(summary!.address, `${base}.50`);
  assert.equal(summary!.profile, "worker");
  assert.equal(summary!.steps, undefined, "the list leaves the steps out");
  assert.deepEqual(
    summary!.phases.map((p) => p.phase),
    ["dhcp", "tftp", "scripts", "kernel", "initrd", "install"],
  );

  const attempt = apiJson<BootAttemptView>(`/nodes/${MAC}/boots/${summary!.attempt}`);
  const seen = attempt.steps!.map((s) => {
    const step = s as unknown as Record<string, unknown>;
    if (step.source === "dhcp") return `dhcp ${step.message}→${step.reply}`;
    if (step.source === "tftp") return `tftp ${step.file} ${step.outcome}`;
    if (step.source === "http") return `http ${step.kind} ${step.status}${step.complete ? "" : " cut"}`;
    return `lifecycle ${step.kind}`;
  });
  t.diagnostic(seen.join(" | "));
  for (const expected of [
    "dhcp DISCOVER→OFFER",
    "dhcp REQUEST→ACK",
    "tftp undionly.kpxe completed",
    "http entry-script 200",
    "http machine-script 200",
    "lifecycle install-boot",
    "http kernel 200",
    "http initrd 200",
    "lifecycle callback-succeeded",
  ])
    assert.ok(seen.includes(expected), `${expected} in ${seen.join(", ")}`);
  // The same through the CLI, as an operator reads it.
  const cli = (args: string[]) =>
    inClient("env", [
      `CENTRA_PXE_URL=http://${link.serverIp}`,
      `CENTRA_PXE_TOKEN=${token}`,
      process.execPath,
      ...cliArgs(["nodes", "boots", ...args]),
    ]);
  assert.match(
    cli(["worker-71"]),
    new RegExp(`^#${summary!.attempt} +\\S+ +installed +bios ${base}\\.50 worker$`, "m"),
  );
  const steps = cli(["worker-71", String(summary!.attempt)]);
  assert.match(steps, /tftp +undionly\.kpxe completed: /);
  assert.match(steps, /http +kernel \S+ 200: 256\.0 KiB in /);
  assert.match(steps, /life +callback-succeeded/);

  const kernelStep = attempt.steps!.find((s) => (s as { kind?: string }).kind === "kernel") as unknown as {
    bytes: number;
    ms: number;
  };
  assert.equal(kernelStep.bytes, 256 * 1024);
});

test("a stranger spraying DHCP, HTTP and TFTP with random MACs stays within the caps and reads nothing without a token", {
  timeout: 3 * 60_000,
}, (t) => {
  if (!requireBinaries(t, "curl")) return;
  const stranger = `${base}.7`;
  // udhcpc's deconfig flushed it in the test before.
  inClient("ip", ["addr", "replace", `${stranger}/24`, "dev", link.clientIf]);
  const randomMac = (i: number) =>
    `02:42:${[i >> 16, i >> 8, i, 7].map((b) => (b & 255).toString(16).padStart(2, "0")).join(":")}`;

  // DHCP: 300 DISCOVERs of a PXE ROM, each from a new MAC.
  const steps = join(dir, "spray.json");
  writeFileSync(
    steps,
    JSON.stringify([
      {
        send: Array.from({ length: 300 }, (_, i) => ({
          mac: randomMac(i),
          type: "Discover",
          vendor: "PXEClient:Arch:00000:UNDI:002001",
        })),
        waitMs: 1000,
      },
    ]),
  );
  // 255.255.255.255 needs a route out; the namespace has only its link.
  inClient("ip", ["route", "replace", "default", "dev", link.clientIf]);
  inClient(process.execPath, ["--import", "tsx", join(repo, "test/dhcp/raw-client.ts"), steps]);
  // HTTP: 200 per-machine scripts, each claiming a new MAC, from the second address.
  const urls = Array.from(
    { length: 200 },
    (_, i) =>
      `http://${link.serverIp}/boot/ipxe/machine.ipxe?mac=${randomMac(100_000 + i).replace(/:/g, "-")}&platform=pcbios`,
  );
  const config = join(dir, "curl-urls.txt");
  writeFileSync(config, urls.map((u) => `url = "${u}"\noutput = "/dev/null"\n`).join(""));
  curl("--interface", stranger, "-K", config);
  // TFTP: 10 reads from the same address (no MAC on the wire: joined only through what DHCP or a script tied).
  const tftpConfig = join(dir, "curl-tftp.txt");
  writeFileSync(
    tftpConfig,
    Array.from(
      { length: 10 },
      (_, i) => `url = "tftp://${link.serverIp}/${i % 2 ? "undionly.kpxe" : `nope-${i}.efi`}"\noutput = "/dev/null"\n`,
    ).join(""),
  );
  try {
    curl("--interface", stranger, "-K", tftpConfig);
  } catch {
    // The missing files make curl exit non-zero; the reads happened.
  }

  // Without a token: nothing, by node, by MAC or the whole list.
  for (const path of ["/nodes/worker-71/boots", `/nodes/${MAC}/boots`, `/nodes/${randomMac(1)}/boots`, "/boots"]) {
    const out = curl("--interface", stranger, "-w", "\n%{http_code}", `http://${link.serverIp}/api/v1${path}`);
    assert.equal(out.slice(out.lastIndexOf("\n") + 1), "401", path);
    assert.doesNotMatch(out, /verdict/);
  }

  const { boots } = apiJson<{ boots: BootAttemptView[] }>("/boots?limit=500");
  const strangers = new Set(boots.filter((b) => b.mac !== MAC).map((b) => b.mac));
  t.diagnostic(`tracked after the spray: ${strangers.size} stranger MACs, ${boots.length} attempts`);
  assert.ok(strangers.size <= STRANGERS, `${strangers.size} stranger MACs tracked, cap ${STRANGERS}`);
  assert.ok(strangers.size > 0, "the spray reached the timeline (else this test proves nothing)");
  const mine = apiJson<{ boots: BootAttemptView[] }>("/nodes/worker-71/boots").boots;
  assert.equal(mine[0]?.verdict, "installed", "the inventory's machine kept its timeline");
  const metrics = curl(`http://${link.serverIp}/metrics`);
  const tracked = Number(/^centra_pxe_timeline_machines (\d+)$/m.exec(metrics)?.[1]);
  assert.ok(tracked <= STRANGERS + 1, `centra_pxe_timeline_machines ${tracked}`);
  assert.match(metrics, /^centra_pxe_timeline_machines_evicted_total [1-9]\d*$/m);
});

test("the OpenAPI document describes the timeline and alert routes", () => {
  if (!daemon) return;
  const paths = Object.keys(apiJson<{ paths: object }>("/openapi.json").paths);
  for (const path of ["/nodes/{ref}/boots", "/nodes/{ref}/boots/{attempt}", "/boots", "/alerts"])
    assert.ok(paths.includes(path), path);
  assert.deepEqual(apiJson<{ alerts: unknown[] }>("/alerts").alerts, []);
});
