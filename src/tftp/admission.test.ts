import { test } from "node:test";
import assert from "node:assert/strict";
import { RequestRateLimit, TransferBudget, type RequestRateLimits, type TransferBudgetLimits } from "./admission.js";

const budgetLimits: TransferBudgetLimits = {
  maxTransfers: 10,
  maxTransfersPerClient: 6,
  maxUnverifiedTransfers: 4,
  maxUnverifiedPerClient: 2,
};

test("a flood of unacknowledged transfers from many addresses evicts the oldest, never refuses a newcomer", () => {
  const budget = new TransferBudget(budgetLimits);
  let id = 0;
  const evicted: number[] = [];
  for (let i = 0; i < 40; i++) {
    const a = budget.admit(++id, `10.0.0.${100 + i}`);
    assert.equal(a.admitted, true, `forged request ${i}`);
    if (a.admitted && a.evict !== undefined) evicted.push(a.evict);
  }
  // Oldest first, and the unverified budget never exceeds its bound nor spills into the total.
  assert.deepEqual(
    evicted,
    Array.from({ length: 36 }, (_, i) => i + 1),
  );
  assert.equal(budget.unverifiedSize, 4);
  assert.equal(budget.size, 4);
  // The real client is admitted in the middle of the flood, acknowledges, and is out of reach.
  const real = ++id;
  assert.deepEqual(budget.admit(real, "10.0.0.2"), { admitted: true, evict: 37 });
  budget.verify(real);
  for (let i = 0; i < 10; i++) {
    const a = budget.admit(++id, `10.0.1.${i}`);
    assert.ok(a.admitted && a.evict !== real);
  }
  assert.equal(budget.size, 5, "4 unverified + the real one");
  budget.release(real);
  assert.equal(budget.size, 4);
});

test("per address: unacknowledged ones are capped (dropped), all of them refused past the client limit", () => {
  const budget = new TransferBudget(budgetLimits);
  assert.ok(budget.admit(1, "a").admitted);
  assert.ok(budget.admit(2, "a").admitted);
  assert.deepEqual(budget.admit(3, "a"), { admitted: false, reason: "client-unverified" });
  budget.verify(1);
  budget.verify(2);
  for (let id = 3; id <= 6; id++) {
    assert.ok(budget.admit(id, "a").admitted);
    budget.verify(id);
  }
  assert.deepEqual(budget.admit(7, "a"), { admitted: false, reason: "client-limit" });
  assert.ok(budget.admit(8, "b").admitted, "another address is not affected");
});

test("the total budget refuses when full of acknowledged transfers; eviction frees only unacknowledged ones", () => {
  const budget = new TransferBudget({ ...budgetLimits, maxTransfersPerClient: 100, maxUnverifiedPerClient: 100 });
  for (let id = 1; id <= 10; id++) {
    assert.ok(budget.admit(id, `c${id}`).admitted);
    budget.verify(id);
  }
  assert.deepEqual(budget.admit(11, "x"), { admitted: false, reason: "busy" });
  budget.release(3);
  assert.deepEqual(budget.admit(11, "x"), { admitted: true, evict: undefined });
});

test("a total budget full partly of unacknowledged transfers evicts one of those rather than refusing", () => {
  const budget = new TransferBudget({
    ...budgetLimits,
    maxUnverifiedTransfers: 10,
    maxTransfersPerClient: 100,
    maxUnverifiedPerClient: 100,
  });
  for (let id = 1; id <= 10; id++) {
    assert.ok(budget.admit(id, "a").admitted);
    if (id % 2 === 0) budget.verify(id);
  }
  assert.deepEqual(budget.admit(11, "b"), { admitted: true, evict: 1 });
  assert.equal(budget.size, 10);
});

test("verify and release are idempotent and ignore ids the budget let go of (an evicted transfer ends later)", () => {
  const budget = new TransferBudget(budgetLimits);
  for (let id = 1; id <= 4; id++) budget.admit(id, `10.0.0.1${id}`);
  const a = budget.admit(5, "10.0.0.9");
  assert.ok(a.admitted && a.evict === 1);
  budget.verify(1);
  budget.release(1);
  budget.release(5);
  budget.release(5);
  budget.verify(5);
  assert.equal(budget.size, 3);
  assert.equal(budget.unverifiedSize, 3);
});

const rates: RequestRateLimits = {
  requestsPerSecondPerClient: 10,
  requestBurstPerClient: 5,
  requestsPerSecond: 100,
  requestBurst: 20,
};

test("a source gets its burst, then its rate; others are not charged", () => {
  const limit = new RequestRateLimit(rates, 0);
  const verdicts = Array.from({ length: 8 }, () => limit.take("a", 0));
  assert.deepEqual(verdicts, ["ok", "ok", "ok", "ok", "ok", "client", "client", "client"]);
  assert.equal(limit.take("b", 0), "ok");
  // 10 per second: one token every 100 ms.
  assert.equal(limit.take("a", 50), "client");
  assert.equal(limit.take("a", 100), "ok");
  assert.equal(limit.take("a", 100), "client");
  assert.equal(limit.take("a", 10_000), "ok");
});

test("the server-wide bucket caps many addresses together, without spending their own tokens", () => {
  // Sources that never refill within the test, so any token spent would show.
  const limit = new RequestRateLimit({ ...rates, requestsPerSecondPerClient: 0.001 }, 0);
  let ok = 0;
  for (let i = 0; i < 100; i++) if (limit.take(`10.1.0.${i}`, 0) === "ok") ok++;
  assert.equal(ok, 20);
  for (let i = 0; i < 10; i++) assert.equal(limit.take("quiet", 0), "global");
  // 100 per second: 200 ms later the server has 20 again, and the quiet source its whole burst.
  const later = Array.from({ length: 6 }, () => limit.take("quiet", 200));
  assert.deepEqual(later, ["ok", "ok", "ok", "ok", "ok", "client"]);
});

test("the table of sources stays bounded under a flood of forged addresses", () => {
  const limit = new RequestRateLimit(rates, 0, 64);
  for (let i = 0; i < 10_000; i++) limit.take(`forged-${i}`, i);
  assert.ok(limit.trackedClients <= 64, String(limit.trackedClients));
  // Quiet sources are forgotten first: their buckets are full again.
  const quiet = new RequestRateLimit(rates, 0, 4);
  for (const s of ["a", "b", "c", "d"]) quiet.take(s, 0);
  quiet.take("e", 10_000);
  assert.equal(quiet.trackedClients, 1);
});
