import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LogThrottle } from "./log.js";

describe("LogThrottle", () => {
  it("lets one line per kind through per interval and counts the ones it held back", () => {
    const throttle = new LogThrottle(10_000);
    assert.equal(throttle.admit("refused", 0), 0, "the first line goes out");
    for (let t = 1; t <= 500; t++) assert.equal(throttle.admit("refused", t), undefined);
    assert.equal(throttle.admit("other", 600), 0, "another kind has its own interval");
    assert.equal(throttle.admit("refused", 10_000), 500, "the next line says how many were held back");
    assert.equal(throttle.admit("refused", 10_001), undefined);
  });

  it("a flood that invents a kind per packet gets at most maxKinds + 1 lines per interval, in bounded memory", () => {
    const throttle = new LogThrottle(10_000, 64);
    let logged = 0;
    // 100,000 forged relay addresses in one interval, each its own kind.
    for (let i = 0; i < 100_000; i++)
      if (throttle.admit(`relayed from 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, i / 100) !== undefined) logged++;
    assert.equal(logged, 65, "64 kinds, then one line for all the others");
    assert.ok(throttle.size <= 65, `remembers ${throttle.size} kinds`);
    // An interval later the stale kinds make room again, one by one, and the map stays bounded.
    let later = 0;
    for (let i = 0; i < 1000; i++) if (throttle.admit(`relayed from 172.16.0.${i}`, 20_000 + i) !== undefined) later++;
    assert.ok(later >= 64 && later <= 66, `${later} lines in the next interval`);
    assert.ok(throttle.size <= 65, `remembers ${throttle.size} kinds`);
  });
});
