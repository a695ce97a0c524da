import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { sendfileBytes } from "../../src/http/file-stream.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";

/**
 * Plain-HTTP downloads by sendfile(2) (native/tcp-sendfile.c), over real sockets: the bytes are
 * the file's, whole and ranged; requests pipelined on one connection (whose socket Node hands
 * over only once the previous response ended) still each get theirs, in order; and a queued
 * request whose connection dies before its turn leaves no open file behind.
 */

/** The most a TCP socket buffer may grow to (the third field of net.ipv4.tcp_wmem / tcp_rmem). */
const socketBufferMax = (name: string) =>
  Number(readFileSync(`/proc/sys/net/ipv4/${name}`, "utf8").trim().split(/\s+/)[2] ?? 0);

const dir = mkdtempSync(join(tmpdir(), "http-sendfile-"));
const kernel = randomBytes(12 * 1024 * 1024);
// More than both loopback socket buffers hold: a reader that stops reading cannot have it all.
const initrdSize = socketBufferMax("tcp_wmem") + socketBufferMax("tcp_rmem") + 4 * 1024 * 1024;
const initrdPath = join(dir, "images", "nixos", "1", "initrd");
let service: HttpService;
let port: number;

before(async () => {
  mkdirSync(join(dir, "images", "nixos", "1"), { recursive: true });
  writeFileSync(join(dir, "images", "nixos", "1", "kernel"), kernel);
  writeFileSync(initrdPath, Buffer.alloc(initrdSize, 7));
  symlinkSync("1", join(dir, "images", "nixos", "current"));
  const config = parseConfig(
    `stateDir: ${dir}\nserverAddress: 127.0.0.1\ndhcp: { mode: off }\nhttp: { port: 0, bindAddress: 127.0.0.1 }\n`,
  );
  service = createHttpService({ config, logger: silentLogger });
  await service.start();
  port = service.address()!.port;
});

after(async () => {
  await service?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Response {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Sends `requests` in one write (pipelined) and reads as many responses, each framed by its Content-Length. */
function pipelined(requests: string[]): Promise<Response[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const responses: Response[] = [];
    let pending = Buffer.alloc(0);
    let current:
      | { status: number; headers: Map<string, string>; length: number; parts: Buffer[]; got: number }
      | undefined;
    socket.on("error", reject);
    socket.on("data", (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        if (!current) {
          const split = pending.indexOf("\r\n\r\n");
          if (split < 0) return;
          const [statusLine = "", ...lines] = pending.subarray(0, split).toString("latin1").split("\r\n");
          const headers = new Map(
            lines.map((line) => [
              line.slice(0, line.indexOf(":")).toLowerCase(),
              line.slice(line.indexOf(":") + 1).trim(),
            ]),
          );
          current = {
            status: Number(statusLine.split(" ")[1]),
            headers,
            length: Number(headers.get("content-length")),
            parts: [],
            got: 0,
          };
          pending = pending.subarray(split + 4);
        }
        const take = pending.subarray(0, current.length - current.got);
        current.parts.push(take);
        current.got += take.length;
        pending = pending.subarray(take.length);
        if (current.got < current.length) return;
        responses.push({ status: current.status, headers: current.headers, body: Buffer.concat(current.parts) });
        current = undefined;
        if (responses.length === requests.length) {
          socket.destroy();
          resolve(responses);
          return;
        }
      }
    });
    socket.write(requests.join(""));
  });
}

const get = (path: string, range?: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\n${range ? `Range: bytes=${range}\r\n` : ""}\r\n`;

test("a plain-HTTP download goes out by sendfile, whole and ranged, byte for byte", async () => {
  const before = sendfileBytes();
  const [whole] = await pipelined([get("/boot/images/nixos/current/kernel")]);
  assert.equal(whole?.status, 200);
  assert.ok(whole!.body.equals(kernel), "the body is the file");
  const [part] = await pipelined([get("/boot/images/nixos/current/kernel", "1000-5000000")]);
  assert.equal(part?.status, 206);
  assert.equal(part?.headers.get("content-range"), `bytes 1000-5000000/${kernel.length}`);
  assert.ok(part!.body.equals(kernel.subarray(1000, 5000001)), "the range is the file's");
  // A full socket buffer is waited for with a 64 KiB piece written through Node; the rest is sendfile's.
  const sent = sendfileBytes() - before;
  assert.ok(sent >= (kernel.length + 4_999_001) / 2, `sendfile sent ${sent} bytes of ${kernel.length + 4_999_001}`);
});

test("requests pipelined on one connection each get their bytes, in order", async () => {
  const before = sendfileBytes();
  const responses = await pipelined([
    get("/boot/images/nixos/current/kernel", "0-99999"),
    get("/boot/images/nixos/current/kernel"),
    get("/boot/images/nixos/current/kernel", "-70000"),
  ]);
  assert.deepEqual(
    responses.map((r) => r.status),
    [206, 200, 206],
  );
  assert.ok(responses[0]!.body.equals(kernel.subarray(0, 100_000)));
  assert.ok(responses[1]!.body.equals(kernel));
  assert.ok(responses[2]!.body.equals(kernel.subarray(kernel.length - 70_000)));
  assert.ok(sendfileBytes() - before >= kernel.length / 2, "the queued responses went out by sendfile too");
});

/** Our open descriptors of `path`. */
const openDescriptorsOf = (path: string) =>
  readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;

test("a queued request whose connection dies before its turn leaves no open file or buffer behind", async () => {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  socket.pause();
  // The first download stalls (nobody reads); the second waits behind it for the socket.
  socket.write(get("/boot/images/nixos/current/initrd") + get("/boot/images/nixos/current/initrd"));
  const deadline = Date.now() + 15_000;
  while (openDescriptorsOf(initrdPath) < 2) {
    if (Date.now() > deadline) assert.fail(`both downloads open the file (${openDescriptorsOf(initrdPath)} open)`);
    await new Promise((r) => setTimeout(r, 20));
  }
  socket.destroy();
  const closeDeadline = Date.now() + 15_000;
  while (openDescriptorsOf(initrdPath) > 0 || service.stats().downloadBuffers.inUse > 0) {
    if (Date.now() > closeDeadline) {
      assert.fail(
        `${openDescriptorsOf(initrdPath)} descriptors of the file and ${service.stats().downloadBuffers.inUse} buffers still held`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
});
