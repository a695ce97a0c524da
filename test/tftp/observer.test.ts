import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { test } from "node:test";
import type { BootObservation, TftpObservation } from "../../src/contracts/boot-observation.js";
import { silentLogger } from "../../src/log.js";
import { TftpServer } from "../../src/tftp/index.js";
import { makeFixture } from "./harness.js";

/**
 * What the TFTP part tells the boot timeline, from a hand-made client on loopback: a read the client
 * ends with an ERROR after the first block (an abort, with the bytes sent), a read of a missing
 * file (refused, with why), and a whole read (completed, every byte).
 */

const rrq = (file: string) => Buffer.concat([Buffer.from([0, 1]), Buffer.from(`${file}\0octet\0`, "latin1")]);
const ack = (block: number) => Buffer.from([0, 4, block >> 8, block & 255]);
const clientError = Buffer.concat([Buffer.from([0, 5, 0, 0]), Buffer.from("user abort\0", "latin1")]);

test("an aborted, a refused and a completed read, as the timeline hears them", { timeout: 30_000 }, async () => {
  const fixture = makeFixture();
  const seen: BootObservation[] = [];
  const server = new TftpServer({
    root: fixture.root,
    bindAddress: "127.0.0.1",
    port: 0,
    logger: silentLogger,
    workers: 0,
    observer: (o) => seen.push(o),
  });
  await server.start();
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = server.address();
  const next = (): Promise<{ data: Buffer; port: number }> =>
    new Promise((resolve) => socket.once("message", (data, rinfo) => resolve({ data, port: rinfo.port })));
  const settled = async (count: number) => {
    for (let i = 0; i < 100 && seen.length < count; i++) await new Promise((r) => setTimeout(r, 20));
    return seen.splice(0) as TftpObservation[];
  };
  try {
    // Abort after the first DATA block.
    let reply = next();
    socket.send(rrq("undionly.kpxe"), port, "127.0.0.1");
    const first = await reply;
    assert.equal(first.data.readUInt16BE(0), 3, "DATA");
    socket.send(clientError, first.port, "127.0.0.1");
    const [aborted] = await settled(1);
    assert.deepEqual(
      [aborted?.outcome, aborted?.file, aborted?.client, aborted?.bytes],
      ["aborted", "undionly.kpxe", "127.0.0.1", 512],
    );
    assert.match(aborted?.reason ?? "", /user abort/);

    reply = next();
    socket.send(rrq("nope.efi"), port, "127.0.0.1");
    assert.equal((await reply).data.readUInt16BE(0), 5, "ERROR");
    const [refused] = await settled(1);
    assert.deepEqual([refused?.outcome, refused?.reason], ["refused", "file not found"]);

    // A whole read: ACK every block until the short one.
    const size = fixture.files["undionly.kpxe"]!.length;
    socket.send(rrq("undionly.kpxe"), port, "127.0.0.1");
    for (let block = 1; ; block++) {
      const { data, port: from } = await next();
      socket.send(ack(block), from, "127.0.0.1");
      if (data.length < 516) break;
    }
    const [completed] = await settled(1);
    assert.deepEqual([completed?.outcome, completed?.bytes, completed?.size], ["completed", size, size]);
    assert.ok(completed!.ms >= 0);
  } finally {
    socket.close();
    await server.stop();
    fixture.cleanup();
  }
});
