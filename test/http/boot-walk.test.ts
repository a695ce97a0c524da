import { test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { findBinary, isCI } from "../support/netns.js";

/**
 * The walk an iPXE client makes, done with real curl against the HTTP service on a real loopback
 * port: entry script → per-machine script → kernel (with a Range request) and initrd.
 */

const stateDir = mkdtempSync(join(tmpdir(), "http-walk-"));
const kernel = randomBytes(3 * 1024 * 1024 + 17);
const initrd = randomBytes(1024 * 1024 + 5);
let service: HttpService;
let base: string;

before(async () => {
  mkdirSync(join(stateDir, "ipxe"));
  writeFileSync(join(stateDir, "ipxe", "undionly.kpxe"), "fake BIOS iPXE");
  writeFileSync(join(stateDir, "ipxe", "ipxe.efi"), "fake UEFI iPXE");
  writeFileSync(join(stateDir, "secret"), "must never be served");
  symlinkSync(join(stateDir, "secret"), join(stateDir, "ipxe", "link-out.efi"));
  mkdirSync(join(stateDir, "images", "nixos", "24.11"), { recursive: true });
  writeFileSync(join(stateDir, "images", "nixos", "24.11", "kernel"), kernel);
  writeFileSync(join(stateDir, "images", "nixos", "24.11", "initrd"), initrd);
  writeFileSync(
    join(stateDir, "images", "nixos", "24.11", "manifest.json"),
    JSON.stringify({ name: "nixos", version: "24.11", cmdline: "init=/nix/store/x/init" }),
  );
  symlinkSync("24.11", join(stateDir, "images", "nixos", "current"));
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 127.0.0.1
dhcp: { mode: off }
http: { port: 0, bindAddress: 127.0.0.1 }
boot: { menuTimeout: 7s }
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01 }
`);
  service = createHttpService({ config, logger: silentLogger });
  await service.start();
  base = `http://127.0.0.1:${service.address()!.port}`;
});

after(async () => {
  await service?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

function haveCurl(t: TestContext): boolean {
  if (findBinary("curl")) return true;
  if (isCI) throw new Error("curl is missing: required under CI (scripts/bootstrap installs it)");
  t.skip("curl is missing");
  return false;
}

/** Run curl without blocking the event loop the server lives on. */
function curl(...args: string[]): Promise<{ status: number; headers: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    // -i: the response head and body on stdout, split at the first blank line.
    execFile(
      "curl",
      ["-sS", "-i", "--max-time", "20", ...args],
      { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`curl ${args.join(" ")}: ${error.message} ${stderr.toString()}`));
        const split = stdout.indexOf("\r\n\r\n");
        const headers = stdout.subarray(0, split === -1 ? stdout.length : split).toString("latin1");
        const body = split === -1 ? Buffer.alloc(0) : stdout.subarray(split + 4);
        const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(headers)?.[1] ?? 0);
        resolve({ status, headers, body });
      },
    );
  });
}

function headerOf(headers: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(.*?)\\r?$`, "im").exec(headers)?.[1];
}

/** Expand the settings the way iPXE would for one machine. */
function expandAsIpxe(url: string, machine: { mac: string; platform: string; buildarch: string }): string {
  return url
    .replace("${netX/mac:hexhyp}", machine.mac.replace(/:/g, "-"))
    .replace("${buildarch:uristring}", machine.buildarch)
    .replace("${platform:uristring}", machine.platform)
    .replace("${uuid}", "8c4a3f1e-2b7d-4e55-9a1c-0d5e6f708192")
    .replace("${serial:uristring}", encodeURIComponent("SN 0042&x"));
}

async function machineScript(mac: string, platform: "pcbios" | "efi"): Promise<string> {
  const entry = await curl(`${base}/boot/ipxe/boot.ipxe`);
  assert.equal(entry.status, 200);
  const chain = /^chain --autofree --replace (\S+)/m.exec(entry.body.toString())?.[1];
  assert.ok(chain, "the entry script chains somewhere");
  const script = await curl(expandAsIpxe(chain, { mac, platform, buildarch: platform === "efi" ? "x86_64" : "i386" }));
  assert.equal(script.status, 200);
  return script.body.toString();
}

for (const platform of ["pcbios", "efi"] as const) {
  test(`curl walks boot.ipxe → machine script → the right kernel bytes (${platform})`, async (t) => {
    if (!haveCurl(t)) return;
    const script = await machineScript("52:54:00:12:34:56", platform);
    const [, kernelUrl = "", args = ""] = /^kernel (\S+) (.*) && goto initrd \|\|$/m.exec(script) ?? [];
    assert.equal(kernelUrl, `${base}/boot/images/nixos/24.11/kernel`);
    const words = args.split(" ");
    for (const w of [
      "centra.profile=control-plane",
      "centra.hostname=control-plane-01",
      "console=tty0",
      "console=ttyS0,115200n8",
      "init=/nix/store/x/init",
    ]) {
      assert.ok(words.includes(w), `${w} in ${args}`);
    }
    assert.equal(words.includes("initrd=initrd"), platform === "efi");

    // iPXE resumes and probes with ranges; the bytes must be exactly the file's.
    const part = await curl("-r", "1000000-1999999", kernelUrl);
    assert.equal(part.status, 206);
    assert.equal(headerOf(part.headers, "content-range"), `bytes 1000000-1999999/${kernel.length}`);
    assert.equal(headerOf(part.headers, "content-length"), "1000000");
    assert.ok(part.body.equals(kernel.subarray(1000000, 2000000)));

    const initrdUrl = /^initrd --name initrd (\S+) /m.exec(script)?.[1];
    assert.equal(initrdUrl, `${base}/boot/images/nixos/24.11/initrd`);
    const whole = await curl(initrdUrl!);
    assert.equal(whole.status, 200);
    assert.equal(headerOf(whole.headers, "content-length"), String(initrd.length));
    assert.equal(
      createHash("sha256").update(whole.body).digest("hex"),
      createHash("sha256").update(initrd).digest("hex"),
    );
  });
}

test("an unknown MAC gets the seed's menu with the configured timeout", async (t) => {
  if (!haveCurl(t)) return;
  const script = await machineScript("52:54:00:aa:bb:cc", "efi");
  assert.match(script, /^menu Centra Cloud - Bare-Metal Provisioning$/m);
  assert.match(script, /^choose --timeout 7000 /m);
});

test("the seed's paths, HEAD and ETag revalidation work with curl", async (t) => {
  if (!haveCurl(t)) return;
  const head = await curl("-I", `${base}/boot/nixos/bzImage`);
  assert.equal(head.status, 200);
  assert.equal(headerOf(head.headers, "content-length"), String(kernel.length));
  assert.equal(head.body.length, 0);
  const etag = headerOf(head.headers, "etag")!;
  assert.ok(etag);
  const again = await curl("-H", `If-None-Match: ${etag}`, `${base}/boot/nixos/bzImage`);
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  const loader = await curl(`${base}/boot/ipxe/ipxe.efi`);
  assert.equal(loader.body.toString(), "fake UEFI iPXE");
});

test("/health answers 200 with the part's state", async (t) => {
  if (!haveCurl(t)) return;
  const health = await curl(`${base}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(JSON.parse(health.body.toString()), { status: "ok", parts: { http: { ok: true } } });
});

test("escapes are refused on the wire (curl --path-as-is, raw request lines)", async (t) => {
  if (!haveCurl(t)) return;
  for (const path of [
    "/boot/ipxe/../../secret",
    "/boot/ipxe/%2e%2e/secret",
    "/boot/ipxe/..%2fsecret",
    "/boot/images/nixos/current/..%5c..%5c..%5csecret",
    "/boot/ipxe/link-out.efi",
  ]) {
    const response = await curl("--path-as-is", `${base}${path}`);
    assert.ok(response.status === 400 || response.status === 404, `${path}: ${response.status}`);
    assert.ok(!response.body.toString().includes("must never be served"), path);
  }
  // Bytes curl will not put on a request line: a backslash path and a NUL.
  for (const path of ["/boot/ipxe/..\\..\\secret", "/boot/ipxe/undionly.kpxe\0"]) {
    const statusLine = await rawRequest(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(statusLine, /^HTTP\/1\.1 (400|404)/, JSON.stringify(path));
  }
});

function rawRequest(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(service.address()!.port, "127.0.0.1");
    let received = "";
    socket.setTimeout(10_000, () => socket.destroy(new Error("no answer")));
    socket.on("data", (d) => (received += d.toString("latin1")));
    socket.on("error", reject);
    socket.on("close", () => resolve(received.split("\r\n")[0] ?? ""));
    socket.end(text, "latin1");
  });
}

test("a client that hangs up mid-download leaves no open file behind", async () => {
  const openFiles = () => readdirSync("/proc/self/fd").length;
  const before = openFiles();
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve, reject) => {
      const socket = connect(service.address()!.port, "127.0.0.1");
      let received = 0;
      socket.on("data", (d) => {
        received += d.length;
        // Past the headers and well into the 3 MB body, but far from its end: hang up.
        if (received > 256 * 1024) socket.destroy();
      });
      socket.on("error", reject);
      socket.on("close", () => resolve());
      socket.write("GET /boot/nixos/bzImage HTTP/1.1\r\nHost: x\r\n\r\n");
    });
  }
  // The server notices the hang-ups asynchronously; give it a moment, then count.
  for (let i = 0; i < 50 && openFiles() > before; i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(openFiles() <= before, `open files: ${before} before, ${openFiles()} after`);
  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200, "still serving");
});

test("many downloads at once each get exactly the file's bytes (pooled buffers are not shared)", async (t) => {
  if (!haveCurl(t)) return;
  const expected = createHash("sha256").update(kernel).digest("hex");
  // Over the pool's "busy" threshold, with ranges that start mid-chunk, so buffers get reused
  // between downloads and partial reads happen.
  const downloads = Array.from({ length: 12 }, (_, i) =>
    i % 3 === 0 ? curl("-r", `${i * 1000 + 1}-`, `${base}/boot/nixos/bzImage`) : curl(`${base}/boot/nixos/bzImage`),
  );
  const results = await Promise.all(downloads);
  results.forEach((r, i) => {
    if (i % 3 === 0) {
      assert.equal(r.status, 206);
      assert.ok(r.body.equals(kernel.subarray(i * 1000 + 1)), `range download ${i}`);
    } else {
      assert.equal(r.status, 200);
      assert.equal(createHash("sha256").update(r.body).digest("hex"), expected, `download ${i}`);
    }
  });
});

/**
 * Responses read off one raw connection, in order: EDK2's HTTP boot sends HEAD then GET for its
 * bootloader on one connection and fails when the server closes between them, and it fails on any
 * redirect (it follows none: a 301 is "boot failed").
 */
async function oneConnection(requests: string[]): Promise<{ status: number; headers: string; open: boolean }[]> {
  const socket = connect(Number(new URL(base).port), "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let buffer = Buffer.alloc(0);
  let closed = false;
  socket.on("data", (chunk: Buffer) => (buffer = Buffer.concat([buffer, chunk])));
  socket.on("close", () => (closed = true));
  const results: { status: number; headers: string; open: boolean }[] = [];
  try {
    for (const request of requests) {
      socket.write(`${request}\r\nHost: 127.0.0.1\r\nUser-Agent: UefiHttpBoot/1.0\r\n\r\n`);
      const head = request.startsWith("HEAD ");
      for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 10))) {
        assert.ok(Date.now() < deadline, `no whole answer to ${request}: ${buffer.toString("latin1").slice(0, 300)}`);
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) continue;
        const headers = buffer.subarray(0, end).toString("latin1");
        const length = head ? 0 : Number(/^content-length: *(\d+)/im.exec(headers)?.[1] ?? 0);
        if (buffer.length < end + 4 + length) continue;
        buffer = buffer.subarray(end + 4 + length);
        await new Promise((r) => setTimeout(r, 50)); // a server that closes after answering shows it by now
        results.push({ status: Number(headers.split(" ")[1]), headers, open: !closed });
        break;
      }
    }
  } finally {
    socket.destroy();
  }
  return results;
}

test("boot paths: HEAD then GET of a bootloader on one kept-alive connection, and never a redirect", async () => {
  const answers = await oneConnection([
    "HEAD /boot/ipxe/ipxe.efi HTTP/1.1",
    "GET /boot/ipxe/ipxe.efi HTTP/1.1",
    "GET /boot/images/nixos/current/initrd HTTP/1.1",
    "GET /boot/ipxe/boot.ipxe HTTP/1.1",
  ]);
  for (const a of answers) {
    assert.equal(a.status, 200, a.headers);
    assert.doesNotMatch(a.headers, /^connection: *close/im, a.headers);
    assert.ok(a.open, `the server closed the connection after:\n${a.headers}`);
  }
  // Paths a web framework would "fix" with a redirect (a trailing slash, a directory) get an answer
  // of their own, never 3xx.
  for (const path of ["/boot/ipxe", "/boot/ipxe/", "/boot/images/nixos/current/", "/boot/nixos/latest/", "/boot"]) {
    const [answer] = await oneConnection([`GET ${path} HTTP/1.1`]);
    assert.ok(answer!.status < 300 || answer!.status >= 400, `${path}: ${answer!.headers}`);
    assert.doesNotMatch(answer!.headers, /^location:/im, `${path}: ${answer!.headers}`);
  }
});

test("grub's configs over HTTP too: the entry, a machine's own (same decision as over TFTP), nothing else", async () => {
  const entry = await fetch(`${base}/boot/grub/grub.cfg`);
  assert.equal(entry.status, 200);
  assert.match(await entry.text(), /source "\$prefix\/machine\/\$grub_cpu\/\$net_default_mac\.cfg"/);
  const machine = await fetch(`${base}/boot/grub/machine/x86_64/52:54:00:12:34:56.cfg`);
  assert.equal(machine.status, 200);
  assert.equal(machine.headers.get("cache-control"), "no-store");
  assert.match(
    await machine.text(),
    /^linux \/boot\/images\/nixos\/24\.11\/kernel .*'centra\.profile=control-plane' 'centra\.hostname=control-plane-01'/m,
  );
  for (const path of ["/boot/grub/x86_64-efi/grub.cfg", "/boot/grub/machine/x86_64/nope.cfg", "/boot/grub/"])
    assert.equal((await fetch(`${base}${path}`)).status, 404, path);
});
