import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpv4 } from "../config/primitives.js";
import { AddressPool } from "./pool.js";

const START = parseIpv4("10.1.0.1")!;
const SLASH16 = 65_534;
const NOW = 1_000_000;
const HOUR = 3_600_000;

function fullPool(size: number, expiresAt = NOW + HOUR): AddressPool {
  const pool = new AddressPool(START, START + size - 1);
  for (let i = 0; i < size; i++) pool.put({ address: START + i, mac: `m${i}`, expiresAt, state: "bound" });
  return pool;
}

describe("AddressPool allocation without walking the range (issue 10)", () => {
  it("a DISCOVER on a full /16 costs microseconds, not a walk of the pool", () => {
    const pool = fullPool(SLASH16);
    const n = 2_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      assert.equal(pool.choose(`new${i}`, undefined, NOW), undefined);
      pool.usage(NOW); // the exhaustion message counts leases: cached, not recounted per DISCOVER
    }
    const perDiscover = (performance.now() - t0) / n;
    // Before: 3.8 ms per DISCOVER on this machine (choose walked 65,534 addresses twice, usage once more).
    console.log(`full /16: ${(perDiscover * 1000).toFixed(1)} µs per DISCOVER (choose + usage)`);
    assert.ok(perDiscover < 0.5, `${perDiscover} ms per DISCOVER`);
  });

  it("reclaims the longest-expired lease first, in O(log n)", () => {
    const pool = new AddressPool(START, START + 9);
    for (let i = 0; i < 10; i++)
      pool.put({ address: START + i, mac: `m${i}`, expiresAt: NOW + (10 - i) * 1000, state: "bound" });
    assert.equal(pool.choose("x", undefined, NOW), undefined, "nothing expired yet");
    assert.equal(pool.choose("x", undefined, NOW + 5_000), START + 9, "expired first");
    pool.hold("x", START + 9, NOW + 5_000);
    assert.equal(pool.choose("y", undefined, NOW + 5_000), START + 8, "not the address offered to x");
    // A renewal moves a lease's expiry: the stale heap entry must not hand it out.
    pool.put({ address: START + 7, mac: "m7", expiresAt: NOW + HOUR, state: "bound" });
    pool.hold("y", START + 8, NOW + 5_000);
    assert.equal(pool.choose("z", undefined, NOW + 5_000), START + 6);
  });

  it("an address whose offer lapsed or was declined by choice is given out again", () => {
    const pool = new AddressPool(START, START + 1);
    pool.hold("a", pool.choose("a", undefined, NOW)!, NOW);
    pool.hold("b", pool.choose("b", undefined, NOW)!, NOW);
    assert.equal(pool.choose("c", undefined, NOW), undefined, "both offered");
    pool.dropOffer("a"); // a chose another server
    assert.equal(pool.choose("c", undefined, NOW), START);
    pool.hold("c", START, NOW);
    assert.notEqual(pool.choose("d", undefined, NOW + 31_000), undefined, "offers lapse after 30 s");
  });

  it("new leases keep the heap bounded (renewals leave stale entries that get compacted)", () => {
    const pool = fullPool(100);
    for (let round = 1; round <= 200; round++)
      for (let i = 0; i < 100; i++)
        pool.put({ address: START + i, mac: `m${i}`, expiresAt: NOW + HOUR + round, state: "bound" });
    const heapSize = (pool as unknown as { reclaimable: { size: number } }).reclaimable.size;
    assert.ok(heapSize <= 2 * 100 + 1024 + 1, `heap has ${heapSize} entries`);
  });

  it("another server's offer to a client holding a lease here leaves the lease and its object alone", () => {
    const pool = new AddressPool(START, START + 9);
    const bound = { address: START, mac: "a", expiresAt: NOW + HOUR, state: "bound" as const };
    pool.put(bound);
    pool.put({ address: START + 5, mac: "a", expiresAt: NOW + 30_000, state: "offered" });
    assert.equal(bound.state, "bound", "the object may be in a batch on its way to the store");
    assert.equal(pool.leaseOf("a")?.address, START);
    assert.equal(pool.isAvailableTo(START + 5, "b", NOW), false, "the offer holds its address");
    // A lease bound elsewhere does move the MAC: the old record becomes released (a copy).
    pool.put({ address: START + 6, mac: "a", expiresAt: NOW + HOUR, state: "bound" });
    assert.equal(bound.state, "bound");
    assert.equal(pool.leaseAt(START)?.state, "released");
    assert.equal(pool.leaseOf("a")?.address, START + 6);
  });
});

describe("AddressPool with several servers (issue 12)", () => {
  it("a client bound elsewhere since this pool's offer is offered its lease on its next DISCOVER", () => {
    const pool = new AddressPool(START, START + 99);
    const offered = pool.choose("aa", undefined, NOW)!;
    pool.hold("aa", offered, NOW);
    // Another server's binding of the client, learned from the store: our offer stands (index.ts
    // `learn`), but a new DISCOVER gets the address the client holds.
    pool.put({ address: START + 50, mac: "aa", expiresAt: NOW + HOUR, state: "bound" });
    assert.equal(pool.offerOf("aa", NOW + 1), offered, "the offer is not voided");
    assert.equal(pool.choose("aa", undefined, NOW + 1), START + 50);
  });
});
