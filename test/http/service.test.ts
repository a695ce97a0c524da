import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
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
    await assert.rejects(async () => service.reload!({ ...config, http: { ...config.http, port: 0, bindAddress: "192.0.2.1" } }));
    assert.equal((await fetch(`http://127.0.0.2:${second.port}/health`)).status, 200);
  } finally {
    await service.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
  assert.equal(service.health().ok, false);
  assert.equal(service.address(), undefined);
});
