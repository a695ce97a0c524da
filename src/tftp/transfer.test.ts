import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode } from "./packet.js";
import {
  blockRange,
  createTransfer,
  isVerified,
  step,
  wireBlock,
  type SendAction,
  type TransferConfig,
  type TransferState,
  type TransferStep,
} from "./transfer.js";

const base: TransferConfig = {
  size: 0,
  blockSize: 512,
  windowSize: 1,
  optionAck: undefined,
  initialTimeoutMs: 1000,
  maxTimeoutMs: 8000,
  unverifiedTimeoutMs: 1000,
  maxRetries: 5,
  maxRetriesUnverified: 2,
};

function config(overrides: Partial<TransferConfig>): TransferConfig {
  return { ...base, ...overrides };
}

/** Deterministic PRNG (mulberry32) so a lossy run is the same on every machine. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type ToClient = { kind: "oack" } | { kind: "data"; block: number; payload: Buffer } | { kind: "error"; code: number };

interface RunResult {
  received: Buffer;
  outcome: TransferStep["outcome"];
  elapsedMs: number;
  serverDatagrams: number;
}

/**
 * Runs one transfer between the state machine and a simulated RFC 1350 / RFC 7440 client over a
 * link that drops each datagram with probability `loss`, on a fake clock.
 */
function simulate(
  file: Buffer,
  cfg: Partial<TransferConfig>,
  options: { loss: number; seed: number; delayMs?: number; clientTimeoutMs?: number },
): RunResult {
  const rand = random(options.seed);
  const delay = options.delayMs ?? 1;
  const clientTimeout = options.clientTimeoutMs ?? 3000;
  let now = 0;
  const queue: { at: number; seq: number; run: () => void }[] = [];
  let seq = 0;
  const schedule = (at: number, run: () => void) => {
    queue.push({ at, seq: seq++, run });
    queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
  };

  let state: TransferState = createTransfer(config({ ...cfg, size: file.length }));
  let serverDeadline: number | undefined;
  let outcome: TransferStep["outcome"];
  let serverDatagrams = 0;

  // Client side.
  const chunks: Buffer[] = [];
  let expected = 1; // absolute next block
  let inWindow = 0;
  let clientDone = false;
  let clientDeadline = clientTimeout;
  const windowSize = cfg.windowSize ?? 1;
  const blockSize = cfg.blockSize ?? 512;

  const toServer = (block: number) => {
    if (rand() < options.loss) return;
    schedule(now + delay, () => feed({ type: "ack", block }));
  };
  const toClient = (d: ToClient) => {
    serverDatagrams++;
    if (rand() < options.loss) return;
    schedule(now + delay, () => clientReceive(d));
  };

  const clientReceive = (d: ToClient) => {
    clientDeadline = now + clientTimeout;
    if (d.kind === "error") {
      clientDone = true;
      return;
    }
    if (d.kind === "oack") {
      if (expected === 1) toServer(0);
      return;
    }
    if (d.block === wireBlock(expected)) {
      chunks.push(d.payload);
      expected++;
      inWindow++;
      const last = d.payload.length < blockSize;
      if (last) clientDone = true;
      if (inWindow === windowSize || last) {
        inWindow = 0;
        toServer(d.block);
      }
    } else if (d.block === wireBlock(expected - 1) && (clientDone || inWindow === 0)) {
      // Our ACK was lost: the server resends the block, and the client ACKs it again, as tftp-hpa,
      // curl and iPXE do (the server's resends before the first ACK are short, admission.ts).
      toServer(d.block);
    } else if (((d.block - wireBlock(expected)) & 0xffff) < 0x8000) {
      // RFC 7440 §4: a block from the future means one was lost; ACK the last in-order block.
      inWindow = 0;
      toServer(wireBlock(expected - 1));
    }
  };

  const apply = (result: TransferStep) => {
    state = result.state;
    for (const action of result.send) expand(action);
    if (result.timer === "cancel") serverDeadline = undefined;
    else if (result.timer !== "keep") serverDeadline = now + result.timer;
    if (result.outcome) outcome = result.outcome;
  };
  const expand = (action: SendAction) => {
    if (action.kind === "oack") toClient({ kind: "oack" });
    else if (action.kind === "error") toClient({ kind: "error", code: action.code });
    else
      for (let b = action.first; b <= action.last; b++) {
        const { offset, length } = blockRange(state, b);
        toClient({ kind: "data", block: wireBlock(b), payload: file.subarray(offset, offset + length) });
      }
  };
  const feed = (event: Parameters<typeof step>[1]) => {
    if (!outcome) apply(step(state, event));
  };

  feed({ type: "start" });
  while (!outcome && now < 36_000_000) {
    const nextEvent = queue[0]?.at ?? Infinity;
    const nextServer = serverDeadline ?? Infinity;
    const nextClient = clientDone ? Infinity : clientDeadline;
    const next = Math.min(nextEvent, nextServer, nextClient);
    if (next === Infinity) break;
    now = next;
    if (next === nextEvent) queue.shift()!.run();
    else if (next === nextServer) {
      serverDeadline = undefined;
      feed({ type: "timeout" });
    } else {
      // Client retransmission: repeat the last ACK (or the ACK of the OACK).
      clientDeadline = now + clientTimeout;
      toServer(wireBlock(expected - 1));
    }
  }
  return { received: Buffer.concat(chunks), outcome, elapsedMs: now, serverDatagrams };
}

function fileOf(size: number, seed = 1): Buffer {
  const rand = random(seed);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

test("a lossless lockstep transfer delivers the file and completes", () => {
  const file = fileOf(74213);
  const r = simulate(file, {}, { loss: 0, seed: 1 });
  assert.deepEqual(r.outcome, { result: "completed" });
  assert.ok(r.received.equals(file));
  assert.equal(r.serverDatagrams, Math.floor(file.length / 512) + 1);
});

test("a file that is a multiple of the block size ends with an empty block", () => {
  const file = fileOf(1024);
  const r = simulate(file, {}, { loss: 0, seed: 1 });
  assert.deepEqual(r.outcome, { result: "completed" });
  assert.equal(r.serverDatagrams, 3);
  assert.ok(r.received.equals(file));
});

test("an empty file is one empty DATA block", () => {
  const r = simulate(Buffer.alloc(0), {}, { loss: 0, seed: 1 });
  assert.deepEqual(r.outcome, { result: "completed" });
  assert.equal(r.serverDatagrams, 1);
});

const lossyCases: [string, Partial<TransferConfig>][] = [
  ["lockstep", {}],
  ["OACK + blksize 1468", { blockSize: 1468, optionAck: [{ name: "blksize", value: "1468" }] }],
  ["windowsize 8", { blockSize: 1468, windowSize: 8, optionAck: [{ name: "windowsize", value: "8" }] }],
];
for (const [name, cfg] of lossyCases) {
  test(`${name}: 5% and 20% loss both ways still deliver every byte`, () => {
    const file = fileOf(300_000, 7);
    for (const loss of [0.05, 0.2]) {
      for (let seed = 1; seed <= 5; seed++) {
        const r = simulate(file, cfg, { loss, seed });
        assert.deepEqual(r.outcome, { result: "completed" }, `loss ${loss} seed ${seed}`);
        assert.ok(r.received.equals(file), `loss ${loss} seed ${seed}`);
      }
    }
  });
}

test("block numbers wrap past 65535 to 0, in lockstep and in windows", () => {
  const file = fileOf(8 * 70_000 + 3, 3);
  for (const windowSize of [1, 16]) {
    const r = simulate(
      file,
      { blockSize: 8, windowSize, optionAck: [{ name: "blksize", value: "8" }] },
      { loss: 0.002, seed: windowSize },
    );
    assert.deepEqual(r.outcome, { result: "completed" });
    assert.ok(r.received.equals(file));
  }
});

test("duplicate ACKs are not answered (no Sorcerer's Apprentice)", () => {
  let s = createTransfer(config({ size: 5000 }));
  s = step(s, { type: "start" }).state;
  const first = step(s, { type: "ack", block: 1 });
  assert.deepEqual(first.send, [{ kind: "data", first: 2, last: 2 }]);
  const dup = step(first.state, { type: "ack", block: 1 });
  assert.deepEqual(dup.send, []);
  assert.equal(dup.timer, "keep");
  // A stale ACK from long ago is ignored the same way.
  assert.deepEqual(step(first.state, { type: "ack", block: 0 }).send, []);
});

test("an ACK inside a window restarts the window after it (RFC 7440 §4)", () => {
  let s = createTransfer(config({ size: 100 * 512, windowSize: 4, optionAck: [{ name: "windowsize", value: "4" }] }));
  const oack = step(s, { type: "start" });
  assert.deepEqual(oack.send, [{ kind: "oack", options: [{ name: "windowsize", value: "4" }] }]);
  s = step(oack.state, { type: "ack", block: 0 }).state;
  assert.equal(s.sent, 4);
  const partial = step(s, { type: "ack", block: 2 });
  assert.deepEqual(partial.send, [{ kind: "data", first: 3, last: 6 }]);
});

test("timeouts retransmit with backoff, then give up with an error to a verified client", () => {
  let s = createTransfer(config({ size: 5000, maxRetries: 3 }));
  s = step(s, { type: "start" }).state;
  s = step(s, { type: "ack", block: 1 }).state;
  const delays: (number | string)[] = [];
  let r: TransferStep | undefined;
  for (let i = 0; i < 4; i++) {
    r = step(s, { type: "timeout" });
    s = r.state;
    delays.push(r.timer);
    if (i < 3) assert.deepEqual(r.send, [{ kind: "data", first: 2, last: 2 }]);
  }
  assert.deepEqual(delays, [2000, 4000, 8000, "cancel"]);
  assert.deepEqual(r!.send, [{ kind: "error", code: ErrorCode.NotDefined, message: "transfer timed out" }]);
  assert.equal(r!.outcome?.result, "failed");
});

test("a client that never acknowledges gets few resends and no error (no amplification)", () => {
  let s = createTransfer(config({ size: 5000, optionAck: [{ name: "tsize", value: "5000" }] }));
  const sent: SendAction[] = [...step(s, { type: "start" }).send];
  for (;;) {
    const r = step(s, { type: "timeout" });
    s = r.state;
    sent.push(...r.send);
    if (r.outcome) break;
  }
  // Only OACKs, never DATA, and at most 1 + maxRetriesUnverified of them.
  assert.ok(sent.every((a) => a.kind === "oack"));
  assert.equal(sent.length, 1 + base.maxRetriesUnverified);
});

test("until the client acknowledges, resends are not backed off: the slot is free after 3 s, not 7 s", () => {
  for (const optionAck of [undefined, [{ name: "tsize", value: "5000" }]]) {
    let r = step(createTransfer(config({ size: 5000, optionAck, unverifiedTimeoutMs: 700 })), { type: "start" });
    const timers: (number | string)[] = [r.timer];
    while (!r.outcome) {
      r = step(r.state, { type: "timeout" });
      timers.push(r.timer);
    }
    assert.deepEqual(timers, [700, 700, 700, "cancel"], JSON.stringify(optionAck));
  }
  // Once acknowledged, the ordinary timer takes over.
  const acked = step(step(createTransfer(config({ size: 5000, unverifiedTimeoutMs: 700 })), { type: "start" }).state, {
    type: "ack",
    block: 1,
  });
  assert.equal(acked.timer, base.initialTimeoutMs);
});

test("a transfer is verified by ACK 0 of an OACK or by ACK 1, not before", () => {
  const oack = step(createTransfer(config({ size: 5000, optionAck: [{ name: "tsize", value: "5000" }] })), {
    type: "start",
  }).state;
  assert.equal(isVerified(oack), false);
  assert.equal(isVerified(step(oack, { type: "ack", block: 0 }).state), true);
  const plain = step(createTransfer(config({ size: 5000 })), { type: "start" }).state;
  assert.equal(isVerified(plain), false);
  assert.equal(
    isVerified(step(plain, { type: "ack", block: 0 }).state),
    false,
    "ACK 0 without an OACK acknowledges nothing",
  );
  assert.equal(isVerified(step(plain, { type: "ack", block: 1 }).state), true);
});

test("a client error ends the transfer as aborted, not failed (PXE tsize probes)", () => {
  const s = step(createTransfer(config({ size: 10, optionAck: [{ name: "tsize", value: "10" }] })), {
    type: "start",
  }).state;
  const r = step(s, { type: "client-error", code: 8, message: "option refused" });
  assert.equal(r.outcome?.result, "aborted");
  assert.equal(r.timer, "cancel");
  assert.deepEqual(step(r.state, { type: "ack", block: 1 }).send, []);
});
