import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { machineBootloaderUrl } from "../../src/boot/boot-chain.js";
import {
  cliFromClient,
  curlFromAddress,
  prepareState,
  type RunningDaemon,
  runCli,
  startDaemon,
} from "../support/daemon.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";

/**
 * The per-machine UEFI HTTP boot URL (`/boot/ipxe/machine/<mac>/<file>`, what DHCP tells a
 * `localBoot: http-404` machine's firmware) as a stranger on the provisioning network would try it:
 * `centra-pxe serve` (DHCP server mode) in its own namespace; in the client namespace the machine's
 * reserved address (.2) and a stranger's second address (.3) on the same link. The machine itself is
 * answered 404 once installed; the stranger, naming its MAC, is answered as for any MAC, before and
 * after, so it learns nothing of the machine, puts nothing on its timeline, and a flood of such
 * requests does not stall the daemon.
 */

const MACHINE = "52:54:00:78:00:01";
const INSTALLING = "52:54:00:78:00:02";
const UNKNOWN = "52:54:00:78:00:99";
let link: TestLink;
let dir: string;
let daemon: RunningDaemon | undefined;
let env: Record<string, string>;
let strangerIp: string;
const net = () => link.serverIp.replace(/\.1$/, "");

const remoteCli = (args: string[]) => cliFromClient(link, env, args);
const curlFrom = (source: string, path: string, ...args: string[]) => curlFromAddress(link, source, path, ...args);
const api = <T>(path: string): T =>
  JSON.parse(curlFrom(link.clientIp, `/api/v1${path}`, "-H", `authorization: Bearer ${env.CENTRA_PXE_TOKEN}`)) as T;
const ownPath = (mac: string) => new URL(machineBootloaderUrl("http://x/boot/ipxe/ipxe.efi", mac)).pathname;

/** What `source` is answered for `path`: the status, the headers that could tell one file from another, the body's hash. */
function answer(source: string, path: string, method: "GET" | "HEAD" = "GET") {
  const body = join(dir, `body-${Math.random().toString(36).slice(2)}`);
  const head = curlFrom(source, path, "-D", "-", "-o", body, ...(method === "HEAD" ? ["-I"] : []));
  const lines = head.split("\r\n");
  const header = (name: string) =>
    lines
      .find((l) => l.toLowerCase().startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim() ?? null;
  const bytes = method === "GET" ? readFileSync(body) : Buffer.alloc(0);
  rmSync(body, { force: true });
  return {
    status: lines[0],
    contentType: header("content-type"),
    contentLength: header("content-length"),
    cacheControl: header("cache-control"),
    etag: header("etag"),
    sha256: createHash("sha256").update(bytes).digest("hex"),
  };
}

/** The bootloader downloads on the machine's timeline (what the timeline joined to its MAC). */
function bootloaderSteps(ref: string): number {
  const { boots } = api<{ boots: { attempt: number }[] }>(`/nodes/${ref}/boots`);
  let count = 0;
  for (const { attempt } of boots) {
    const boot = api<{ steps?: { source: string; kind?: string }[] }>(`/nodes/${ref}/boots/${attempt}`);
    count += (boot.steps ?? []).filter((s) => s.source === "http" && s.kind === "bootloader").length;
  }
  return count;
}

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink();
  strangerIp = `${net()}.3`;
  link.inClient("ip", ["addr", "add", `${strangerIp}/24`, "dev", link.clientIf]);
  dir = mkdtempSync(join(tmpdir(), "machine-bootloader-"));
  const config = join(dir, "config.yaml");
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
provisioning: { timeout: 10m }
profiles:
  worker: { image: nixos, localBoot: http-404 }
`,
  );
  prepareState(config, { kernel: Buffer.alloc(64 * 1024, 7), initrd: Buffer.alloc(32 * 1024, 9) });
  const token = runCli(["token", "create", "--name", "bootloader-stranger", "--config", config]).trim();
  env = { CENTRA_PXE_URL: `http://${link.serverIp}`, CENTRA_PXE_TOKEN: token };
  daemon = await startDaemon(link, config);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a stranger naming a machine's MAC in its UEFI HTTP boot URL gets the same answer, installed or not; the machine gets its 404", {
  timeout: 3 * 60_000,
}, (t) => {
  if (!requireBinaries(t, "curl")) return;
  // The machine's reserved address is the client namespace's .2; the other node's is nobody's here.
  remoteCli(["nodes", "add", MACHINE, "--profile", "worker", "--hostname", "machine-01", "--ip", link.clientIp]);
  remoteCli(["nodes", "add", INSTALLING, "--profile", "worker", "--hostname", "machine-02", "--ip", `${net()}.4`]);
  remoteCli(["nodes", "provision", "machine-01"]);
  remoteCli(["nodes", "provision", "machine-02"]);

  // What anyone gets at the shared URL is what the stranger must get at any machine's own.
  const shared = answer(strangerIp, "/boot/ipxe/ipxe.efi");
  assert.equal(shared.status, "HTTP/1.1 200 OK");
  const sharedHead = answer(strangerIp, "/boot/ipxe/ipxe.efi", "HEAD");
  const strangerSees = (mac: string, when: string) => {
    assert.deepEqual(answer(strangerIp, ownPath(mac)), shared, `GET ${mac} ${when}`);
    assert.deepEqual(answer(strangerIp, ownPath(mac), "HEAD"), sharedHead, `HEAD ${mac} ${when}`);
  };
  for (const mac of [MACHINE, INSTALLING, UNKNOWN]) strangerSees(mac, "before the install");
  assert.deepEqual(answer(link.clientIp, ownPath(MACHINE)), shared, "the machine, installing, gets its bootloader");

  // The machine installs: its script from its own address carries the token, its installer calls back.
  const script = curlFrom(
    link.clientIp,
    `/boot/ipxe/machine.ipxe?mac=${MACHINE.replace(/:/g, "-")}&buildarch=x86_64&platform=efi&uuid=&serial=`,
  );
  const token = /centra\.token=([A-Za-z0-9_-]+)/.exec(script)?.[1];
  assert.ok(token, script);
  assert.match(
    curlFrom(link.clientIp, `/api/v1/nodes/callback?mac=${MACHINE}&token=${token}`, "-i", "-X", "POST"),
    /^HTTP\/1\.1 200/,
  );
  assert.equal(JSON.parse(remoteCli(["nodes", "show", "machine-01", "--json"])).state, "provisioned");

  // The machine itself, from the address DHCP reserved to it: 404, so its firmware boots its disk.
  const own = answer(link.clientIp, ownPath(MACHINE));
  assert.equal(own.status, "HTTP/1.1 404 Not Found");
  assert.equal(own.cacheControl, "no-store");
  assert.equal(answer(link.clientIp, ownPath(MACHINE), "HEAD").status, "HTTP/1.1 404 Not Found");
  const onTimeline = bootloaderSteps("machine-01");
  assert.ok(onTimeline >= 1, "the machine's own 404s are on its timeline");

  // The stranger: the same bytes and headers as before, as for the machine still installing, as
  // for a MAC nobody holds; and none of it lands on the machine's timeline.
  for (const mac of [MACHINE, INSTALLING, UNKNOWN]) strangerSees(mac, "after the install");
  assert.equal(bootloaderSteps("machine-01"), onTimeline, "the stranger's downloads are not the machine's");
  assert.equal(JSON.parse(remoteCli(["nodes", "show", "machine-01", "--json"])).state, "provisioned");
});

test("a stranger flooding per-machine bootloader URLs does not stall the daemon; the machine is still answered", {
  timeout: 3 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const urls: string[] = [];
  for (let i = 0; i < 400; i++) {
    const mac = `52:54:00:79:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
    urls.push(`http://${link.serverIp}${ownPath(i % 4 === 0 ? MACHINE : mac)}`);
  }
  const list = join(dir, "flood.txt");
  writeFileSync(list, urls.map((u) => `url = "${u}"\noutput = "/dev/null"\n`).join(""));
  const flood = link.spawnInClient("curl", [
    "-sS",
    "-I",
    "--interface",
    strangerIp,
    "--parallel",
    // Within http.maxConnectionsPerAddress (32): what is measured is the answers, not that cap.
    "--parallel-max",
    "16",
    "--max-time",
    "60",
    "-w",
    "%{http_code}\\n",
    "-K",
    list,
  ]);
  let codes = "";
  flood.stdout!.on("data", (d: Buffer) => (codes += d.toString()));
  const exited = new Promise<void>((resolve) => flood.once("exit", () => resolve()));
  // While it runs, the machine's own answer and /health come promptly.
  let slowest = 0;
  for (let i = 0; i < 5; i++) {
    const started = Date.now();
    assert.equal(answer(link.clientIp, ownPath(MACHINE), "HEAD").status, "HTTP/1.1 404 Not Found");
    assert.match(curlFrom(link.clientIp, "/health", "-i"), /^HTTP\/1\.1 200/);
    slowest = Math.max(slowest, Date.now() - started);
  }
  await exited;
  assert.ok(slowest < 5_000, `the machine waited ${slowest} ms during the flood`);
  const answered = codes.split(/\s+/).filter(Boolean);
  assert.equal(answered.length, urls.length, "every request of the flood was answered");
  assert.deepEqual([...new Set(answered)], ["200"], "each one the bootloader, the machine's MAC too");
});
