import { createSocket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

/** Read `name` with plain RFC 1350 lockstep (512-byte blocks, no options): its bytes, or the ERROR message. */
async function readOverTftp(port: number, name: string): Promise<Buffer | string> {
  const client = createSocket("udp4");
  client.bind(0, "127.0.0.1");
  await once(client, "listening");
  const chunks: Buffer[] = [];
  try {
    return await new Promise<Buffer | string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${name}`)), 10_000);
      client.on("message", (msg, rinfo) => {
        const opcode = msg.readUInt16BE(0);
        if (opcode === 5) {
          clearTimeout(timer);
          resolve(msg.subarray(4, msg.length - 1).toString());
          return;
        }
        const block = msg.readUInt16BE(2);
        chunks.push(msg.subarray(4));
        client.send(Buffer.from([0, 4, block >> 8, block & 0xff]), rinfo.port, rinfo.address);
        if (msg.length - 4 < 512) {
          clearTimeout(timer);
          resolve(Buffer.concat(chunks));
        }
      });
      client.send(Buffer.concat([Buffer.from([0, 1]), Buffer.from(`${name}\0octet\0`)]), port, "127.0.0.1");
    });
  } finally {
    client.close();
  }
}

test("sources: bytes made for the requesting client, and files from another root, before the served directory", async () => {
  const root = mkdtempSync(join(tmpdir(), "cpxe-tftp-server-"));
  const other = mkdtempSync(join(tmpdir(), "cpxe-tftp-other-"));
  writeFileSync(join(root, "plain.efi"), "from the root");
  writeFileSync(join(other, "kernel"), Buffer.alloc(1300, 7));
  const asked: string[] = [];
  const server = new TftpServer({
    root,
    bindAddress: "127.0.0.1",
    port: 0,
    logger: silentLogger,
    workers: 0,
    sources: async (filename, client) => {
      asked.push(`${client} ${filename}`);
      if (filename === "/grub/grub.cfg") return { kind: "bytes", bytes: Buffer.from(`config for ${client}\n`) };
      if (filename.startsWith("images/")) return { kind: "file", root: other, name: filename.slice(7) };
      return undefined;
    },
  });
  await server.start();
  try {
    const port = server.address().port;
    assert.equal(String(await readOverTftp(port, "/grub/grub.cfg")), "config for 127.0.0.1\n");
    assert.deepEqual(await readOverTftp(port, "images/kernel"), Buffer.alloc(1300, 7));
    assert.equal(String(await readOverTftp(port, "plain.efi")), "from the root");
    // Another root is no way out of it: the same path checks apply.
    assert.equal(typeof (await readOverTftp(port, "images/../plain.efi")), "string");
    assert.ok(asked.includes("127.0.0.1 /grub/grub.cfg"));
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(other, { recursive: true, force: true });
  }
});

/**
 * The boot storm's lost machines (bench/storm/README.md): a client that was sent a whole file and
 * then sends a new RRQ from the same port (its final ACK lost, its next transfer on the same port)
 * must get a new transfer, and the old one must stop sending to that port. Taken for a
 * retransmitted RRQ, the request went unanswered while the old transfer's last block, retried for
 * half a minute, reached the new request's socket.
 */
for (const workers of [0, 1]) {
  test(`a new RRQ from the port of a transfer whose last block went out starts a new one; a late repeat does not (workers: ${workers})`, async () => {
    const root = mkdtempSync(join(tmpdir(), "cpxe-tftp-server-"));
    writeFileSync(join(root, "boot.bin"), Buffer.alloc(3000, 1)); // blocks 1468, 1468, 64
    const server = new TftpServer({ root, bindAddress: "127.0.0.1", port: 0, logger: silentLogger, workers });
    await server.start();
    const client = createSocket("udp4");
    client.bind(0, "127.0.0.1");
    await once(client, "listening");
    const seen: { opcode: number; block: number; port: number }[] = [];
    const next = (match: (d: { opcode: number; block: number; port: number }) => boolean, what: string) =>
      new Promise<{ opcode: number; block: number; port: number }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what}; saw ${JSON.stringify(seen)}`)), 2000);
        const listener = (msg: Buffer, rinfo: { port: number }) => {
          const d = { opcode: msg.readUInt16BE(0), block: msg.readUInt16BE(2), port: rinfo.port };
          seen.push(d);
          if (!match(d)) return;
          clearTimeout(timer);
          client.off("message", listener);
          resolve(d);
        };
        client.on("message", listener);
      });
    const rrq = Buffer.concat([Buffer.from([0, 1]), Buffer.from("boot.bin\0octet\0blksize\x001468\0")]);
    const ack = (block: number, port: number) =>
      client.send(Buffer.from([0, 4, block >> 8, block & 0xff]), port, "127.0.0.1");
    try {
      const port = server.address().port;
      client.send(rrq, port, "127.0.0.1");
      const first = await next((d) => d.opcode === 6, "OACK");
      for (let block = 0; block < 3; block++) {
        ack(block, first.port);
        await next((d) => d.opcode === 3 && d.block === block + 1, `DATA ${block + 1}`);
      }
      // The final ACK is "lost": the client asks again, from the same port, a moment later (a
      // worker's word that the last block went out crosses threads; a request that beats it is
      // taken for a repeat, and the client's own retransmission a second later gets through).
      await new Promise((resolve) => setTimeout(resolve, 300));
      seen.length = 0;
      client.send(rrq, port, "127.0.0.1");
      const second = await next((d) => d.opcode === 6, "second OACK (the RRQ was taken for a retransmission)");
      assert.notEqual(second.port, first.port, "a transfer of its own");
      ack(0, second.port);
      await next((d) => d.opcode === 3 && d.block === 1 && d.port === second.port, "DATA 1 of the new transfer");
      // The old transfer retransmits after 1 s unless it was ended.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(
        seen.filter((d) => d.port === first.port),
        [],
        "nothing more from the old transfer's port",
      );
      assert.equal(server.stats().transfersAborted, 1, "the old transfer ended as the client's doing");

      // A late client's repeated RRQ that arrives after its first ACK (both were sent in one turn
      // of its loop) is still a repeat: the transfer goes on from its port, and no other starts.
      const repeat = Buffer.concat([Buffer.from([0, 1]), Buffer.from("boot.bin\0octet\0blksize\x001468\0")]);
      const late = createSocket("udp4");
      late.bind(0, "127.0.0.1");
      await once(late, "listening");
      const lateSeen: { opcode: number; block: number; port: number }[] = [];
      late.on("message", (msg: Buffer, rinfo: { port: number }) =>
        lateSeen.push({ opcode: msg.readUInt16BE(0), block: msg.readUInt16BE(2), port: rinfo.port }),
      );
      const lateWait = async (opcode: number, block: number) => {
        const deadline = Date.now() + 3000;
        for (;;) {
          const found = lateSeen.find((d) => d.opcode === opcode && (opcode !== 3 || d.block === block));
          if (found) return found;
          if (Date.now() > deadline)
            throw new Error(`late client: no ${opcode}/${block}; saw ${JSON.stringify(lateSeen)}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      try {
        late.send(repeat, port, "127.0.0.1");
        const oack = await lateWait(6, 0);
        late.send(Buffer.from([0, 4, 0, 0]), oack.port, "127.0.0.1");
        await lateWait(3, 1);
        late.send(repeat, port, "127.0.0.1");
        for (let block = 1; block < 3; block++) {
          late.send(Buffer.from([0, 4, 0, block]), oack.port, "127.0.0.1");
          await lateWait(3, block + 1);
        }
        late.send(Buffer.from([0, 4, 0, 3]), oack.port, "127.0.0.1");
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.deepEqual(
          lateSeen.filter((d) => d.port !== oack.port),
          [],
          "the repeated RRQ started no second transfer",
        );
        assert.equal(server.stats().transfersAborted, 1, "nor ended the first");
      } finally {
        late.close();
      }
    } finally {
      client.close();
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });
}
