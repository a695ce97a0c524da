import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cliArgs, startDaemon, type RunningDaemon, prepareState } from "../support/daemon.js";
import { createLink, requireBinaries, sh, type TestLink } from "../support/netns.js";

/**
 * The whole daemon as an operator runs it: `centra-pxe serve` in its own network namespace, with a
 * client namespace across a veth, driven by real clients — udhcpc for DHCP, tftp-hpa for the
 * bootloader, curl for the iPXE walk — then SIGHUP with a bad and a good config, then SIGTERM.
 */

const MAC = "52:54:00:12:34:56";
let link: TestLink;
let dir: string;
let daemon: RunningDaemon;

function writeConfig(hostname: string, extra = ""): void {
  writeFileSync(
    join(dir, "config.yaml"),
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
dhcp:
  subnet: ${link.serverIp.replace(/\.1$/, ".0")}
  netmask: 255.255.255.0
  range: { start: ${link.serverIp.replace(/\.1$/, ".100")}, end: ${link.serverIp.replace(/\.1$/, ".150")} }
  router: ${link.serverIp}
  leaseTime: 10m
nodes:
  "${MAC}": { profile: control-plane, hostname: ${hostname}, ipAddress: ${link.serverIp.replace(/\.1$/, ".50")} }
${extra}`,
  );
}

before(async () => {
  link = createLink({ clientIp: null });
  dir = mkdtempSync(join(tmpdir(), "serve-"));
  writeConfig("control-plane-01");
  const config = join(dir, "config.yaml");
  prepareState(config, { kernel: Buffer.alloc(2 * 1024 * 1024 + 3, 7), initrd: Buffer.alloc(1024 * 1024, 9) });
  daemon = await startDaemon(link, config);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const curl = (path: string, ...args: string[]) =>
  link.inClient("curl", ["-sS", "--max-time", "10", ...args, `http://${link.serverIp}${path}`]);

test("a known MAC gets its fixed address from udhcpc", (t) => {
  if (!requireBinaries(t, "udhcpc")) return;
  link.inClient("ip", ["link", "set", link.clientIf, "address", MAC]);
  // udhcpc reports on stderr; `-s /bin/true` keeps it from configuring the link itself.
  const out = link.inClient("sh", [
    "-c",
    `timeout 30 udhcpc -i ${link.clientIf} -n -q -f -O hostname -s /bin/true 2>&1`,
  ]);
  assert.match(out, new RegExp(`lease of ${link.serverIp.replace(/\.1$/, ".50").replace(/\./g, "\\.")} obtained`));
  link.inClient("ip", ["addr", "add", `${link.serverIp.replace(/\.1$/, ".50")}/24`, "dev", link.clientIf]);
});

test("the bootloader comes over TFTP byte for byte", (t) => {
  if (!requireBinaries(t, "tftp")) return;
  const target = join(dir, "undionly.kpxe");
  link.inClient("tftp", [link.serverIp, "-m", "binary", "-c", "get", "undionly.kpxe", target]);
  assert.deepEqual(readFileSync(target), readFileSync(join(dir, "state", "ipxe", "undionly.kpxe")));
});

test("curl walks entry script → machine script → kernel with a Range request", (t) => {
  if (!requireBinaries(t, "curl")) return;
  const entry = curl("/boot/ipxe/boot.ipxe");
  assert.match(entry, /^#!ipxe/);
  const chain = /chain [^\n]*?(http:\/\/\S+machine\.ipxe\?\S+)/.exec(entry)?.[1];
  assert.ok(chain, entry);
  // What iPXE would expand its variables to on a UEFI machine.
  const url = chain
    .replace("${netX/mac:hexhyp}", MAC.replace(/:/g, "-"))
    .replace("${buildarch:uristring}", "x86_64")
    .replace("${platform:uristring}", "efi")
    .replace("${uuid}", "")
    .replace("${serial:uristring}", "");
  const script = link.inClient("curl", ["-sS", "--max-time", "10", url]);
  assert.match(script, /centra\.profile=control-plane/);
  assert.match(script, /centra\.hostname=control-plane-01/);
  assert.match(script, /initrd=initrd/);
  const kernelUrl = /kernel (http:\/\/\S+)/.exec(script)?.[1];
  assert.ok(kernelUrl, script);
  const part = link.inClient("curl", ["-sS", "--max-time", "10", "-r", "100-199", kernelUrl, "-o", "-"]);
  assert.equal(part.length, 100);
  const full = join(dir, "kernel.out");
  link.inClient("curl", ["-sS", "--max-time", "20", kernelUrl, "-o", full]);
  assert.equal(
    createHash("sha256").update(readFileSync(full)).digest("hex"),
    createHash("sha256")
      .update(readFileSync(join(dir, "bzImage")))
      .digest("hex"),
  );
  assert.match(curl("/health"), /"status":"ok"/);
});

test("/metrics counts what the clients above did, per part", () => {
  const text = curl("/metrics");
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? NaN);
  assert.ok(value("centra_pxe_dhcp_replies_total") >= 2, "udhcpc's OFFER and ACK");
  assert.ok(value("centra_pxe_tftp_transfers_completed_total") >= 1);
  assert.ok(
    value("centra_pxe_tftp_bytes_sent_total") >= readFileSync(join(dir, "state", "ipxe", "undionly.kpxe")).length,
  );
  assert.match(text, /^centra_pxe_http_requests_total\{kind="image",status="206"\} 1$/m);
  assert.match(text, /^centra_pxe_part_up\{part="dhcp"\} 1$/m);
  assert.match(text, /^centra_pxe_nodes\{state="ready"\} 1$/m);
});

test("SIGHUP: a bad config is refused and the old one keeps serving; a good one applies at once", async () => {
  writeConfig("control-plane-01", "bogus: true\n");
  daemon.process.kill("SIGHUP");
  await daemon.waitForLog("the refusal", (log) => log.includes("new config refused"));
  assert.match(daemon.log(), /config\.yaml:\d+:1 bogus: unknown key/);
  const machine = `/boot/ipxe/machine.ipxe?mac=${MAC.replace(/:/g, "-")}&platform=pcbios&buildarch=i386`;
  assert.match(curl(machine), /centra\.hostname=control-plane-01/);
  writeConfig("control-plane-99");
  daemon.process.kill("SIGHUP");
  await daemon.waitForLog("the reload", (log) => log.includes("SIGHUP: config reloaded"));
  assert.match(curl(machine), /centra\.hostname=control-plane-99/);
});

const doctor = () => {
  try {
    return {
      code: 0,
      out: sh("ip", [
        "netns",
        "exec",
        link.serverNs!,
        process.execPath,
        ...cliArgs(["doctor", "--config", join(dir, "config.yaml")]),
      ]),
    };
  } catch (error) {
    const e = error as { status: number; stdout: string };
    return { code: e.status, out: e.stdout };
  }
};

test("doctor passes every check against the running server: DHCP offer, each bootloader over TFTP, HTTP", () => {
  const { code, out } = doctor();
  assert.equal(code, 0, out);
  assert.match(out, /ok +dhcp on \S+: OFFER of /);
  assert.match(out, /ok +tftp undionly\.kpxe: \d+ bytes, identical/);
  assert.match(out, /ok +tftp ipxe\.efi: /);
  assert.match(out, /ok +http \/health: 200/);
  assert.match(out, /all \d+ checks passed/);
});

test("SIGTERM stops every part and exits 0", async () => {
  const exited = new Promise<number | null>((resolve) => daemon.process.once("exit", (code) => resolve(code)));
  daemon.process.kill("SIGTERM");
  assert.equal(await exited, 0);
  for (const part of ["dhcp", "tftp", "http"])
    assert.match(daemon.log(), new RegExp(`"service":"${part}","msg":"stopped"`));
});

test("doctor against a stopped server fails and says what to do", () => {
  const { code, out } = doctor();
  assert.equal(code, 1);
  assert.match(out, /FAIL http \/health: .*\n {5}fix: is `centra-pxe serve` running/);
  assert.match(out, /FAIL dhcp on \S+: no DHCPOFFER/);
});
