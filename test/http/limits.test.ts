import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { ChildProcess } from "node:child_process";
import { repo, startDaemon, waitFor, type RunningDaemon, prepareState } from "../support/daemon.js";
import { createLink, requireBinaries, sh, type TestLink } from "../support/netns.js";

/**
 * HTTP under attack, as a stranger on the provisioning network would try it (issue 10 item 6):
 * `centra-pxe serve` with the default `http:` section in its own namespace; the attacker runs
 * stranger.ts from other addresses of the client namespace while a real curl, from the client's
 * own address, still has to get its files.
 */

let link: TestLink;
let dir: string;
let daemon: RunningDaemon;
/** Addresses of the client namespace besides the client's own: the strangers. */
let strangers: string[];
const kernel = Buffer.alloc(3 * 1024 * 1024 + 17, 5);
/** Big enough to stay far from done behind a full send buffer and a full receive window. */
const initrd = Buffer.alloc(48 * 1024 * 1024, 9);
for (let i = 0; i < initrd.length; i += 4096) initrd[i] = i & 0xff;

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink();
  strangers = [3, 4, 5].map((n) => link.serverIp.replace(/\.1$/, `.${n}`));
  for (const address of strangers) link.inClient("ip", ["addr", "add", `${address}/24`, "dev", link.clientIf]);
  dir = mkdtempSync(join(tmpdir(), "http-limits-"));
  const config = join(dir, "config.yaml");
  // Nothing under `http:` or `tftp:`: the defaults are what is under test.
  writeFileSync(
    config,
    `interface: ${link.serverIf}\nserverAddress: ${link.serverIp}\nstateDir: ${join(dir, "state")}\ndhcp: { mode: off }\n`,
  );
  prepareState(config, { kernel: kernel, initrd: initrd });
  daemon = await startDaemon(link, config);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** stranger.ts in the client namespace; its findings are JSON lines. */
function stranger(args: string[]): { child: ChildProcess; findings: () => Record<string, unknown>[] } {
  const child = link.spawnInClient(
    process.execPath,
    ["--import", "tsx", join(repo, "test/http/stranger.ts"), args[0]!, link.serverIp, "80", ...args.slice(1)],
    { cwd: repo },
  );
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const findings = () => {
    if (err.trim()) throw new Error(`stranger.ts: ${err}`);
    return out
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  return { child, findings };
}

async function finding(of: ReturnType<typeof stranger>, key: string, ms: number): Promise<Record<string, unknown>> {
  await waitFor(`the stranger to report ${key}`, () => of.findings().some((f) => key in f || "error" in f), { ms });
  const found = of.findings().find((f) => key in f || "error" in f)!;
  assert.equal(found.error, undefined, String(found.error));
  return found;
}

/** curl from the client's own address, in the background so the test's event loop stays free. */
function curlFile(path: string, expected: Buffer, seconds = 60): Promise<{ ok: boolean; detail: string; ms: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = link.spawnInClient("sh", [
      "-c",
      `curl -sS --max-time ${seconds} --interface ${link.clientIp} http://${link.serverIp}${path} | sha256sum`,
    ]);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", () => {
      const want = createHash("sha256").update(expected).digest("hex");
      resolve({ ok: out.startsWith(want), detail: out.trim(), ms: Date.now() - start });
    });
  });
}

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);

test("with the default config, HTTP and TFTP listen on serverAddress only", (t) => {
  if (!requireBinaries(t, "ss", "curl")) return;
  const tcp = sh("ip", ["netns", "exec", link.serverNs!, "ss", "-ltnH"]);
  const udp = sh("ip", ["netns", "exec", link.serverNs!, "ss", "-lunH"]);
  assert.match(tcp, new RegExp(`${link.serverIp.replace(/\./g, "\\.")}:80\\s`), tcp);
  assert.doesNotMatch(tcp, /(0\.0\.0\.0|\*|\[::\]):80\s/, tcp);
  assert.match(udp, new RegExp(`${link.serverIp.replace(/\./g, "\\.")}:69\\s`), udp);
  assert.doesNotMatch(udp, /(0\.0\.0\.0|\*|\[::\]):69\s/, udp);
  // Another address of the same host is refused (curl exit 7: could not connect).
  assert.throws(
    () => sh("ip", ["netns", "exec", link.serverNs!, "curl", "-sS", "--max-time", "5", "http://127.0.0.1/health"]),
    /Failed to connect|Couldn't connect/,
  );
});

test("slowloris (headers one byte a second) is cut off by the header timeout; curl still gets its file", {
  timeout: 90_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const attack = stranger(["slowloris", strangers[0]!, "/boot/nixos/bzImage"]);
  try {
    await new Promise((r) => setTimeout(r, 3000));
    const download = await curlFile("/boot/nixos/bzImage", kernel);
    assert.ok(download.ok, `curl during the attack: ${download.detail}`);
    // Default header timeout 10 s; Node's default would let it trickle for 60-90 s.
    const cut = await finding(attack, "closed", 40_000);
    assert.ok(Number(cut.afterMs) < 30_000, `cut after ${String(cut.afterMs)} ms`);
    assert.match(String(cut.received), /^(HTTP\/1\.1 408|$)/, "a 408 or a plain close, never a file");
  } finally {
    attack.child.kill("SIGKILL");
  }
});

test("an idle keep-alive connection is closed", { timeout: 60_000 }, async () => {
  const idle = stranger(["idle", strangers[0]!]);
  try {
    const answered = await finding(idle, "answered", 20_000);
    assert.match(String(answered.answered), /^HTTP\/1\.1 200/);
    // Default keep-alive timeout 5 s (Fastify's own would hold it for 72 s).
    const closed = await finding(idle, "closed", 30_000);
    assert.ok(Number(closed.afterMs) < 20_000, `closed after ${String(closed.afterMs)} ms`);
  } finally {
    idle.child.kill("SIGKILL");
  }
});

test("one address gets at most its share of connections; another address is still served", {
  timeout: 90_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const holder = stranger(["hold", strangers[1]!, "32"]);
  try {
    const held = await finding(holder, "held", 40_000);
    assert.equal(held.held, 32, "the default cap admits 32 connections from one address");
    const extra = await finding(holder, "extra", 20_000);
    assert.doesNotMatch(String(extra.extra), /^HTTP/, `the 33rd connection was answered: ${String(extra.extra)}`);
    assert.equal(extra.stillOpen, 32, "refusing the extra one leaves the admitted ones alone");
    const download = await curlFile("/boot/nixos/bzImage", kernel);
    assert.ok(download.ok, `curl from another address: ${download.detail}`);
    const metrics = link.inClient("curl", ["-sS", "--max-time", "10", `http://${link.serverIp}/metrics`]);
    assert.match(
      metrics,
      /^centra_pxe_http_connections_refused_total\{cap="per_address"\} [1-9]/m,
      "the refusal is counted",
    );
  } finally {
    holder.child.kill("SIGKILL");
  }
  // Closed connections give their places back.
  await new Promise((r) => setTimeout(r, 1000));
  const again = stranger(["hold", strangers[1]!, "32"]);
  try {
    assert.equal((await finding(again, "held", 40_000)).held, 32);
  } finally {
    again.child.kill("SIGKILL");
  }
});

test("60 readers that never read hold little memory and do not stall a real download", {
  timeout: 180_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const pid = daemon.process.pid!;
  // A first download warms whatever the server keeps between downloads.
  assert.ok((await curlFile("/boot/nixos/initrd", initrd)).ok);
  await new Promise((r) => setTimeout(r, 1000));
  const before = rssKiB(pid);
  const readers = 60;
  const stall = stranger(["stall", strangers.join(","), String(readers / strangers.length), "/boot/nixos/initrd"]);
  try {
    assert.equal((await finding(stall, "stalled", 60_000)).stalled, readers);
    // Let every download run into its full socket.
    await new Promise((r) => setTimeout(r, 4000));
    const during = rssKiB(pid);
    const download = await curlFile("/boot/nixos/initrd", initrd, 120);
    assert.ok(download.ok, `curl beside ${readers} stalled readers: ${download.detail}`);
    assert.ok(download.ms < 60_000, `a 48 MiB download took ${download.ms} ms beside stalled readers`);
    const perReaderKiB = (Math.max(during, rssKiB(pid)) - before) / readers;
    t.diagnostic(
      `RSS ${before} KiB before, ${during} KiB with ${readers} stalled readers: ${perReaderKiB.toFixed(0)} KiB each`,
    );
    assert.ok(perReaderKiB < 768, `each stalled reader costs ${perReaderKiB.toFixed(0)} KiB of the daemon's RSS`);
  } finally {
    stall.child.kill("SIGKILL");
  }
});
