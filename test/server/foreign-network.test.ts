import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runToEnd } from "../dhcp/harness.js";
import { cliArgs, repo, startDaemon, waitFor } from "../support/daemon.js";
import { createLink, requireBinaries, sh, type TestLink } from "../support/netns.js";

/**
 * Issue 18, the rogue-DHCP case: a config written for another network (serverAddress and
 * dhcp.subnet 192.168.77.0/24) served on an interface that carries 10.x.y.1/24. Like ISC dhcpd's
 * "No subnet declaration for eth0", DHCP must refuse to start, say why, and send nothing on the
 * link, while a machine on it asks for an address the whole time. tcpdump in the server's
 * namespace is the witness. Then the same config once the interface does carry the address: a
 * lease, so the refusal was about the network and nothing else.
 */

const FOREIGN = "192.168.77";
let link: TestLink;
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "foreign-"));
});
after(() => {
  link?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function writeForeignConfig(): string {
  const file = join(dir, "config.yaml");
  writeFileSync(
    file,
    `interface: ${link.serverIf}
serverAddress: ${FOREIGN}.10
stateDir: ${join(dir, "state")}
dhcp:
  subnet: ${FOREIGN}.0
  netmask: 255.255.255.0
  range: { start: ${FOREIGN}.100, end: ${FOREIGN}.150 }
  router: ${FOREIGN}.1
# HTTP and TFTP on every address, so DHCP is the part that decides.
tftp: { bindAddress: 0.0.0.0 }
http: { bindAddress: 0.0.0.0 }
`,
  );
  return file;
}

/** udhcpc on the client end, asking for `tries` x `seconds`; its exit code is 0 only with a lease. */
const askForLease = (tries: number, seconds: number) =>
  runToEnd(
    link.spawnInClient("udhcpc", [
      "-f",
      "-q",
      "-n",
      "-i",
      link.clientIf,
      "-s",
      "/bin/true",
      "-t",
      String(tries),
      "-T",
      String(seconds),
    ]),
    (tries * seconds + 30) * 1000,
  );

test("serve on an interface the config's subnet does not declare: DHCP refuses, says why, sends nothing", {
  timeout: 180_000,
}, async (t) => {
  if (!requireBinaries(t, "udhcpc", "tcpdump", "ip")) return;
  link = createLink({ clientIp: null });
  const config = writeForeignConfig();
  assert.match(sh(process.execPath, cliArgs(["validate", config])), /valid/, "the file itself is valid");

  const pcap = join(dir, "link.pcap");
  const capture = link.spawnInServer("tcpdump", ["-i", link.serverIf, "-n", "-U", "-w", pcap, "udp"]);
  let captureLog = "";
  capture.stderr!.on("data", (d: Buffer) => (captureLog += d.toString()));
  await waitFor("tcpdump to listen", () => captureLog.includes("listening on"), { ms: 20_000 });

  // The machine asks for ~16 s: before, while and after the daemon starts and refuses.
  const client = askForLease(8, 2);
  const daemon = link.spawnInServer(process.execPath, cliArgs(["serve", "--config", config]), { cwd: repo });
  const served = await runToEnd(daemon, 60_000);
  const lease = await client;
  capture.kill("SIGINT");
  await new Promise((resolve) => capture.once("exit", resolve));

  assert.equal(served.code, 1, `serve must exit 1:\n${served.output}`);
  assert.match(
    served.output,
    new RegExp(
      `DHCP refuses to serve: no subnet declaration for ${link.serverIf} \\(${link.serverIp.replace(/\./g, "\\.")}/24\\): it does not carry serverAddress ${FOREIGN}\\.10`,
    ),
  );
  assert.notEqual(lease.code, 0, `the client got a lease from a server that should have refused:\n${lease.output}`);
  const read = (filter: string) =>
    sh("tcpdump", ["-r", pcap, "-n", filter])
      .split("\n")
      .filter((l) => l.trim());
  assert.ok(read("udp src port 68").length >= 2, "the capture saw the client's DISCOVERs (it works)");
  assert.deepEqual(read("udp src port 67"), [], "nothing left the server on DHCP's port");

  // The same file, once the interface does carry serverAddress in that subnet: served.
  const run = (args: string[]) => sh("ip", ["netns", "exec", link.serverNs!, ...args]);
  run(["ip", "addr", "add", `${FOREIGN}.10/24`, "dev", link.serverIf]);
  const running = await startDaemon(link, config);
  try {
    const good = await askForLease(10, 2);
    assert.equal(good.code, 0, `no lease once the address is there:\n${good.output}\n${running.log().slice(-2000)}`);
  } finally {
    running.process.kill("SIGTERM");
    await new Promise((resolve) => running.process.once("exit", resolve));
  }
});
