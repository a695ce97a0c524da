import { test } from "node:test";
import assert from "node:assert/strict";
import { negotiate } from "./options.js";

const opt = (name: string, value: string) => ({ name, value });

test("no options: RFC 1350 defaults and no OACK", () => {
  assert.deepEqual(negotiate([], 1000), { blockSize: 512, windowSize: 1, timeoutMs: undefined, acknowledged: [] });
});

test("blksize, tsize, timeout and windowsize are acknowledged in the client's order and case", () => {
  const p = negotiate([opt("TSIZE", "0"), opt("blksize", "1468"), opt("timeout", "3"), opt("windowsize", "8")], 74213);
  assert.equal(p.blockSize, 1468);
  assert.equal(p.windowSize, 8);
  assert.equal(p.timeoutMs, 3000);
  assert.deepEqual(p.acknowledged, [opt("TSIZE", "74213"), opt("blksize", "1468"), opt("timeout", "3"), opt("windowsize", "8")]);
});

test("out-of-range values are not acknowledged; larger ones are lowered", () => {
  assert.deepEqual(negotiate([opt("blksize", "7")], 1).acknowledged, []);
  assert.equal(negotiate([opt("blksize", "70000")], 1).blockSize, 65464);
  assert.deepEqual(negotiate([opt("timeout", "0"), opt("timeout", "300")], 1).acknowledged, []);
  assert.deepEqual(negotiate([opt("windowsize", "0")], 1).acknowledged, []);
  assert.equal(negotiate([opt("windowsize", "1000")], 1, { maxBlockSize: 65464, maxWindowSize: 32 }).windowSize, 32);
  assert.equal(negotiate([opt("blksize", "9000")], 1, { maxBlockSize: 1468, maxWindowSize: 32 }).blockSize, 1468);
});

test("unknown options, non-numeric values and repeats are ignored", () => {
  const p = negotiate([opt("multicast", ""), opt("blksize", "12x"), opt("rollover", "0"), opt("tsize", "0"), opt("tsize", "5")], 42);
  assert.deepEqual(p.acknowledged, [opt("tsize", "42")]);
  assert.equal(p.blockSize, 512);
});
