import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";

/** The HTTP part's lifecycle on real sockets: port 0, health, a reload that moves the listener. */

test("start on port 0, report the bound port, move on reload, stop", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "http-service-"));
  const config = parseConfig(`stateDir: ${stateDir}\nhttp: { port: 0, bindAddress: 127.0.0.1 }\n`);
  const service = createHttpService({ config, logger: silentLogger });
  assert.equal(service.health().ok, false, "not serving before start");
  await service.start();
  try {
    const first = service.address()!;
    assert.equal(first.address, "127.0.0.1");
    assert.ok(first.port > 0);
    assert.equal(service.health().ok, true);
    assert.equal((await fetch(`http://127.0.0.1:${first.port}/health`)).status, 200);

    // Any 127/8 address is loopback on Linux: a different bind address is a real move.
    await service.reload!({ ...config, http: { ...config.http, port: 0, bindAddress: "127.0.0.2" } });
    const second = service.address()!;
    assert.equal(second.address, "127.0.0.2");
    assert.equal((await fetch(`http://127.0.0.2:${second.port}/health`)).status, 200);
    await assert.rejects(fetch(`http://127.0.0.1:${first.port}/health`), "the old listener is closed");

    // A bind that fails is refused and the current listener keeps serving.
    await assert.rejects(async () =>
      service.reload!({ ...config, http: { ...config.http, port: 0, bindAddress: "192.0.2.1" } }),
    );
    assert.equal((await fetch(`http://127.0.0.2:${second.port}/health`)).status, 200);
  } finally {
    await service.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
  assert.equal(service.health().ok, false);
  assert.equal(service.address(), undefined);
});

/** Sockets that ask for `path` and never read the answer (so they never see the server close them either). */
function stalledReaders(port: number, path: string, count: number): Socket[] {
  return Array.from({ length: count }, () => {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.pause();
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return socket;
  });
}

const until = async (what: string, check: () => boolean, ms = 15_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test("a reader that stops reading holds one chunk, then is closed after sendTimeout; a reload applies new caps", {
  timeout: 60_000,
}, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "http-service-"));
  mkdirSync(join(stateDir, "images", "nixos", "1"), { recursive: true });
  writeFileSync(join(stateDir, "images", "nixos", "1", "kernel"), Buffer.alloc(48 * 1024 * 1024, 1));
  symlinkSync("1", join(stateDir, "images", "nixos", "current"));
  const config = parseConfig(`stateDir: ${stateDir}\nhttp: { port: 0, bindAddress: 127.0.0.1, sendTimeout: 2s }\n`);
  const service = createHttpService({ config, logger: silentLogger });
  await service.start();
  const port = service.address()!.port;
  try {
    const readers = stalledReaders(port, "/boot/nixos/bzImage", 3);
    await until("three downloads to start", () => service.stats().downloadBuffers.inUse === 3);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(service.stats().downloadBuffers.inUse, 3, "one chunk per stalled download, no more");
    assert.equal(service.stats().downloadBuffers.spares, 0, "stalled downloads gave their read-ahead chunks back");
    // Default sendTimeout is 60 s; 2 s here, and generous slack for a loaded machine.
    await until("the server to close the stalled connections", () => service.stats().openConnections === 0, 20_000);
    // A download gives its chunk back once its pending disk read or write settles, which on a busy
    // machine can come a little after its socket closed.
    await until("their chunks to be given back", () => service.stats().downloadBuffers.inUse === 0, 5_000);
    for (const s of readers) s.destroy();

    await service.reload!({ ...config, http: { ...config.http, maxConnectionsPerAddress: 1 } });
    const first = connect(port, "127.0.0.1");
    await new Promise<void>((r) => first.once("data", () => r()).write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    const second = connect(port, "127.0.0.1");
    second.on("error", () => undefined);
    let answered = false;
    second.on("data", () => (answered = true));
    second.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise<void>((r) => second.once("close", () => r()));
    assert.equal(answered, false, "the second connection from one address is closed unanswered");
    assert.equal(service.stats().refusedConnections.perAddress, 1);
    assert.equal(first.destroyed, false, "the admitted one is left alone");
    first.destroy();
  } finally {
    await service.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
