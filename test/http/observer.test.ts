import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import type { BootObservation, HttpObservation } from "../../src/contracts/boot-observation.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";

/**
 * What the HTTP part tells the boot timeline, over a real socket: each boot path's kind, status,
 * bytes and duration once the response ended, a download cut short as such, a HEAD as no body,
 * and the per-machine script's MAC and decision.
 */

const dir = mkdtempSync(join(tmpdir(), "http-observer-"));
/** The most a TCP socket buffer may grow to (the third field of net.ipv4.tcp_wmem / tcp_rmem). */
const socketBufferMax = (name: string) =>
  Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[2] ?? 0);
// Larger than both loopback socket buffers can hold at once: sendfile hands the kernel all it can
// take in one go, and a smaller file would be all in flight (the response complete) before the
// client below hangs up.
const kernel = Buffer.alloc(
  Math.max(4 * 1024 * 1024, socketBufferMax("tcp_wmem") + socketBufferMax("tcp_rmem") + 4 * 1024 * 1024),
  3,
);
const seen: BootObservation[] = [];
let service: HttpService;
let port: number;

before(async () => {
  mkdirSync(join(dir, "ipxe"));
  writeFileSync(join(dir, "ipxe", "ipxe.efi"), "fake UEFI iPXE");
  mkdirSync(join(dir, "images", "nixos", "1"), { recursive: true });
  writeFileSync(join(dir, "images", "nixos", "1", "kernel"), kernel);
  writeFileSync(join(dir, "images", "nixos", "1", "initrd"), "initrd");
  symlinkSync("1", join(dir, "images", "nixos", "current"));
  const config = parseConfig(`
stateDir: ${dir}
serverAddress: 127.0.0.1
dhcp: { mode: off }
http: { port: 0, bindAddress: 127.0.0.1 }
nodes:
  "52:54:00:0b:00:01": { profile: worker, hostname: worker-0b }
`);
  service = createHttpService({ config, logger: silentLogger, observer: (o) => seen.push(o) });
  await service.start();
  port = service.address()!.port;
});

after(async () => {
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function settled(count: number): Promise<HttpObservation[]> {
  for (let i = 0; i < 100 && seen.length < count; i++) await new Promise((r) => setTimeout(r, 20));
  return seen.splice(0) as HttpObservation[];
}

test("scripts, bootloaders and images are reported with their kind, bytes and the script's decision", async () => {
  const base = `http://127.0.0.1:${port}`;
  await (await fetch(`${base}/boot/ipxe/boot.ipxe`)).text();
  await (await fetch(`${base}/boot/ipxe/machine.ipxe?mac=52-54-00-0b-00-01&platform=efi`)).text();
  await (await fetch(`${base}/boot/ipxe/ipxe.efi`)).arrayBuffer();
  await (await fetch(`${base}/boot/nixos/bzImage`)).arrayBuffer();
  await fetch(`${base}/boot/images/nixos/current/initrd`, { method: "HEAD" });
  await (await fetch(`${base}/health`)).text();
  const [entry, script, loader, image, head, ...rest] = await settled(5);
  assert.equal(rest.length, 0, "/health is no boot path");
  assert.equal(entry?.kind, "entry-script");
  assert.equal(script?.kind, "machine-script");
  assert.equal(script?.mac, "52:54:00:0b:00:01");
  assert.deepEqual(script?.decision, { boot: "image", profile: "worker", image: "nixos/1", install: false });
  assert.equal(loader?.kind, "bootloader");
  assert.equal(loader?.bytes, 14);
  assert.equal(image?.kind, "kernel", "the seed's bzImage is the kernel");
  assert.deepEqual(
    [image?.status, image?.bytes, image?.size, image?.complete],
    [200, kernel.length, kernel.length, true],
  );
  assert.equal(image?.client, "127.0.0.1");
  assert.deepEqual([head?.kind, head?.method, head?.bytes, head?.complete], ["initrd", "HEAD", 0, true]);
});

test("a client that hangs up mid-download is reported cut short, with how far it got", async () => {
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let received = 0;
    socket.on("data", (d) => {
      received += d.length;
      if (received > 512 * 1024) socket.destroy();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve());
    socket.write("GET /boot/images/nixos/1/kernel HTTP/1.1\r\nHost: x\r\n\r\n");
  });
  const [cut] = await settled(1);
  assert.equal(cut?.kind, "kernel");
  assert.equal(cut?.complete, false);
  assert.equal(cut?.size, kernel.length);
  assert.ok(cut!.bytes > 0 && cut!.bytes < kernel.length, `bytes ${cut?.bytes}`);
});
