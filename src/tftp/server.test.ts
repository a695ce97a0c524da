import { createSocket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config/load.js";
import { pino } from "pino";
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

test("a flood of refused requests is one log line per kind per interval, with the count held back", async () => {
  const lines: { msg: string; heldBack?: number }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const root = mkdtempSync(join(tmpdir(), "cpxe-tftp-server-"));
  const server = new TftpServer({
    root,
    bindAddress: "127.0.0.1",
    port: 0,
    logger,
    // The per-client rate is not what is tested here: let every request through to its refusal.
    limits: { requestBurstPerClient: 1000, requestBurst: 1000 },
    workers: 0,
  });
  await server.start();
  const client = createSocket("udp4");
  try {
    client.bind(0, "127.0.0.1");
    await once(client, "listening");
    let errors = 0;
    client.on("message", (msg) => {
      if (msg.readUInt16BE(0) === 5) errors++;
    });
    const request = (opcode: number, name: string) =>
      Buffer.concat([Buffer.from([0, opcode]), Buffer.from(`${name}\0octet\0`)]);
    for (let i = 0; i < 150; i++) {
      client.send(request(1, `missing-${i}.efi`), server.address().port, "127.0.0.1"); // RRQ, no such file
      client.send(request(2, `upload-${i}`), server.address().port, "127.0.0.1"); // WRQ, read-only server
      // Paced, so no datagram is lost to a full socket buffer on a loaded box.
      if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const deadline = Date.now() + 20_000;
    while (errors < 300 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(errors, 300, "every request was refused with an ERROR");
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
    assert.equal(count("tftp read refused"), 1, JSON.stringify(lines.slice(0, 4)));
    assert.equal(count("tftp write request refused (read-only server)"), 1);
  } finally {
    client.close();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
});
