import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config/load.js";
import { silentLogger } from "../log.js";
import { DEFAULT_TFTP_LIMITS, TftpServer } from "./server.js";

test("tftp.limits: taken from the config, checked, and changed by a reload (left out: the default)", async () => {
  const config = parseConfig(
    JSON.stringify({ tftp: { limits: { requestBurstPerClient: 5, maxUnverifiedTransfers: 64 } } }),
  );
  assert.deepEqual(config.tftp.limits, { requestBurstPerClient: 5, maxUnverifiedTransfers: 64 });
  assert.throws(() => parseConfig(JSON.stringify({ tftp: { limits: { requestBurst: 0 } } })));
  assert.throws(() => parseConfig(JSON.stringify({ tftp: { limits: { slots: 5 } } })), "unknown keys are errors");

  const root = mkdtempSync(join(tmpdir(), "cpxe-tftp-server-"));
  const server = new TftpServer({
    root,
    bindAddress: "127.0.0.1",
    port: 0,
    logger: silentLogger,
    limits: config.tftp.limits,
    workers: 0,
  });
  await server.start();
  try {
    assert.equal(server.limits.requestBurstPerClient, 5);
    assert.equal(server.limits.maxUnverifiedTransfers, 64);
    await server.reconfigure(root, "127.0.0.1", 0, { requestBurstPerClient: 7 });
    assert.equal(server.limits.requestBurstPerClient, 7);
    assert.equal(server.limits.maxUnverifiedTransfers, DEFAULT_TFTP_LIMITS.maxUnverifiedTransfers);
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
});
