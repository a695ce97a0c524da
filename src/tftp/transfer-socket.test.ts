import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Worker } from "node:worker_threads";
import { openTransferSocket, type TransferSocket } from "./transfer-socket.js";

/** A client on loopback and a transfer socket connected to it; datagrams each side received. */
interface Pair {
  socket: TransferSocket;
  atClient: Buffer[];
  atServer: { bytes: Buffer; replied: number }[];
  /** The client sends ACK `block` to the transfer socket's port (known once it has sent something). */
  ack(block: number): void;
  close(): void;
}

async function pair(): Promise<Pair> {
  const client: Socket = createSocket("udp4");
  client.bind(0, "127.0.0.1");
  await once(client, "listening");
  const atClient: Buffer[] = [];
  let serverPort = 0;
  client.on("message", (m, from) => {
    serverPort = from.port;
    atClient.push(m);
  });
  const atServer: { bytes: Buffer; replied: number }[] = [];
  const socket = openTransferSocket("127.0.0.1", "127.0.0.1", client.address().port, {
    // The buffer is reused for the next datagram: copy what the test keeps.
    onDatagram: (buffer, length, replied) => atServer.push({ bytes: Buffer.from(buffer.subarray(0, length)), replied }),
    onError: (error) => assert.fail(error),
  });
  return {
    socket,
    atClient,
    atServer,
    ack(block) {
      assert.ok(serverPort, "the transfer socket has sent nothing yet");
      client.send(Buffer.from([0, 4, block >> 8, block & 0xff]), serverPort, "127.0.0.1");
    },
    close() {
      socket.close();
      client.close();
    },
  };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(condition(), "timed out");
}

/** Datagrams of `size` bytes filled with their index, one after the other, the last `lastSize`. */
function run(count: number, size: number, lastSize = size): Buffer {
  const bytes = Buffer.alloc((count - 1) * size + lastSize);
  for (let i = 0; i < count; i++) bytes.fill(i, i * size, Math.min(bytes.length, (i + 1) * size));
  return bytes;
}

test("a run leaves as separate datagrams of the segment size, the last one shorter", async () => {
  const p = await pair();
  try {
    // 100 datagrams are past one GSO send (64 segments): they go in turns. Small ones, so the
    // client's default receive buffer holds them all until its event loop reads them.
    assert.equal(p.socket.sendRun(run(100, 200, 50), 200), 100);
    await until(() => p.atClient.length === 100);
    p.atClient.forEach((d, i) => {
      assert.equal(d.length, i === 99 ? 50 : 200);
      assert.ok(d.every((b) => b === i));
    });
    assert.equal(p.socket.send(Buffer.from([0, 5, 0, 1, 0])), true);
    await until(() => p.atClient.length === 101);
    // A full-size window of 44 blocks of 1468 (one send of just under 64 KB).
    assert.equal(p.socket.sendRun(run(44, 1472), 1472), 44);
    await until(() => p.atClient.length === 145);
    assert.ok(p.atClient.slice(101).every((d, i) => d.length === 1472 && d[0] === i));
  } finally {
    p.close();
  }
});

test("segments too large to group leave one per message", async () => {
  const p = await pair();
  try {
    // Two segments of 40 000 bytes exceed one GSO send (65 000 bytes); blksize 65464 is the RFC 2348 maximum.
    assert.equal(p.socket.sendRun(run(3, 40_000, 10), 40_000), 3);
    await until(() => p.atClient.length === 3);
    assert.deepEqual(
      p.atClient.map((d) => d.length),
      [40_000, 40_000, 10],
    );
    assert.equal(p.socket.sendRun(run(2, 65_468, 4), 65_468), 2);
    await until(() => p.atClient.length === 5);
    assert.deepEqual(
      p.atClient.slice(3).map((d) => d.length),
      [65_468, 4],
    );
  } finally {
    p.close();
  }
});

test("a worker thread that ends with transfer sockets open takes them down without taking the process", async () => {
  const addon = fileURLToPath(new URL("../../build/Release/udp_transfer_socket.node", import.meta.url));
  for (const ending of ["terminate", "exit", "throw"]) {
    const worker = new Worker(
      `const { parentPort } = require("node:worker_threads");
       const addon = require(${JSON.stringify(addon)});
       for (let i = 0; i < 3; i++) addon.openTransferSocket("127.0.0.1", "127.0.0.1", 9, 65536, Buffer.alloc(64), () => {});
       parentPort.on("message", (how) => { if (how === "exit") process.exit(0); if (how === "throw") throw new Error("boom"); });
       parentPort.postMessage("open");`,
      { eval: true },
    );
    const exited = new Promise((resolve) => worker.on("exit", resolve));
    worker.on("error", () => {}); // the "throw" case; the point is what happens after it
    await new Promise((resolve) => worker.once("message", resolve));
    if (ending === "terminate") await worker.terminate();
    else worker.postMessage(ending);
    await exited;
  }
  // Still here: the sockets were closed with their thread's loop, not after their code was unloaded.
});

test("an armed reply goes out on its ACK only, once, and the ACK still reaches JavaScript", async () => {
  const p = await pair();
  try {
    const window = run(4, 516);
    p.socket.armReply(7, window, 516);
    // The client learns the server's port from a first datagram (an OACK would be it).
    p.socket.send(Buffer.from([0, 6]));
    await until(() => p.atClient.length === 1);
    p.ack(6); // another block: no reply
    await until(() => p.atServer.length === 1);
    assert.deepEqual(p.atServer[0], { bytes: Buffer.from([0, 4, 0, 6]), replied: -1 });
    p.ack(7);
    await until(() => p.atServer.length === 2 && p.atClient.length === 5);
    assert.equal(p.atServer[1]!.replied, 4);
    p.ack(7); // a duplicate: the reply fired once
    await until(() => p.atServer.length === 3);
    assert.equal(p.atServer[2]!.replied, -1);
    p.socket.armReply(8, window, 516);
    p.socket.armReply(8, undefined, 0); // disarmed
    p.ack(8);
    await until(() => p.atServer.length === 4);
    assert.equal(p.atServer[3]!.replied, -1);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(p.atClient.length, 5);
  } finally {
    p.close();
  }
});

test("the addon keeps an armed run alive until it fires, though JavaScript dropped it", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const collected: string[] = [];
  const registry = new FinalizationRegistry<string>((name) => collected.push(name));
  const collect = async () => {
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const p = await pair();
  try {
    p.socket.send(Buffer.from([0, 6]));
    await until(() => p.atClient.length === 1);
    // Armed from a scope that keeps nothing: only the addon's reference holds the run.
    const arm = (name: string) => {
      const window = run(44, 1472);
      registry.register(window, name);
      p.socket.armReply(9, window, 1472);
    };
    arm("replaced");
    arm("fired");
    await collect();
    assert.deepEqual(collected, ["replaced"], "a replaced run is let go; the armed one is not");
    p.ack(9);
    await until(() => p.atClient.length === 45);
    assert.ok(p.atClient.slice(1).every((d, i) => d.length === 1472 && d.every((b) => b === i)));
    assert.equal(p.atServer[0]!.replied, 44);
    await collect();
    assert.deepEqual(collected.sort(), ["fired", "replaced"], "once sent, the run is let go");
  } finally {
    p.close();
  }
});
