import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, negotiate } from "./options.js";

const opt = (name: string, value: string) => ({ name, value });

test("no options: RFC 1350 defaults and no OACK", () => {
  assert.deepEqual(negotiate([], 1000), { blockSize: 512, windowSize: 1, timeoutMs: undefined, acknowledged: [] });
});

test("blksize, tsize, timeout and windowsize are acknowledged in the client's order and case", () => {
  const p = negotiate([opt("TSIZE", "0"), opt("blksize", "1468"), opt("timeout", "3"), opt("windowsize", "8")], 74213);
  assert.equal(p.blockSize, 1468);
  assert.equal(p.windowSize, 8);
  assert.equal(p.timeoutMs, 3000);
  assert.deepEqual(p.acknowledged, [
    opt("TSIZE", "74213"),
    opt("blksize", "1468"),
    opt("timeout", "3"),
    opt("windowsize", "8"),
  ]);
});

test("out-of-range values are not acknowledged; larger ones are lowered", () => {
  assert.deepEqual(negotiate([opt("blksize", "7")], 1).acknowledged, []);
  assert.deepEqual(negotiate([opt("timeout", "11")], 1).acknowledged, [], "above maxClientTimeoutS");
  assert.deepEqual(negotiate([opt("timeout", "10")], 1).acknowledged, [opt("timeout", "10")]);
  assert.equal(negotiate([opt("blksize", "70000")], 1).blockSize, 65464);
  assert.deepEqual(negotiate([opt("timeout", "0"), opt("timeout", "300")], 1).acknowledged, []);
  assert.deepEqual(negotiate([opt("windowsize", "0")], 1).acknowledged, []);
  assert.equal(negotiate([opt("windowsize", "1000")], 1, { ...DEFAULT_LIMITS, maxWindowSize: 32 }).windowSize, 32);
  assert.equal(negotiate([opt("blksize", "9000")], 1, { ...DEFAULT_LIMITS, maxBlockSize: 1468 }).blockSize, 1468);
});

test("unknown options, non-numeric values and repeats are ignored", () => {
  const p = negotiate(
    [opt("multicast", ""), opt("blksize", "12x"), opt("rollover", "0"), opt("tsize", "0"), opt("tsize", "5")],
    42,
  );
  assert.deepEqual(p.acknowledged, [opt("tsize", "42")]);
  assert.equal(p.blockSize, 512);
});

test("blksize below 512 is treated as not requested (RFC 2348 lets the server ignore it)", () => {
  for (const small of ["8", "64", "511"]) {
    const p = negotiate([opt("blksize", small), opt("tsize", "0")], 5000);
    assert.equal(p.blockSize, 512, small);
    assert.deepEqual(p.acknowledged, [opt("tsize", "5000")], "the OACK leaves blksize out");
  }
  assert.deepEqual(
    negotiate([opt("blksize", "8")], 5000).acknowledged,
    [],
    "nothing else asked: no OACK, DATA 1 of 512 bytes",
  );
  assert.deepEqual(negotiate([opt("blksize", "512")], 5000).acknowledged, [opt("blksize", "512")]);
});
