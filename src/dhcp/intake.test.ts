import assert from "node:assert/strict";
import { describe, it, test } from "node:test";
import { Intake } from "./intake.js";

describe("Intake: past saturation, clients mid-exchange first, new DISCOVERs dropped first", () => {
  it("serves the in-progress lane before any waiting DISCOVER, each lane in arrival order", () => {
    const intake = new Intake<string>({ inProgress: 8, fresh: 8 });
    for (const item of ["d1", "d2"]) assert.ok(intake.admit(item, "fresh"));
    for (const item of ["r1", "r2"]) assert.ok(intake.admit(item, "inProgress"));
    assert.ok(intake.admit("d3", "fresh"));
    assert.equal(intake.size, 5);
    const order: string[] = [];
    for (let next = intake.next(); next; next = intake.next()) {
      order.push(next);
      if (next === "d1") intake.admit("r3", "inProgress"); // a REQUEST read meanwhile overtakes d2
    }
    assert.deepEqual(order, ["r1", "r2", "d1", "r3", "d2", "d3"]);
    assert.equal(intake.size, 0);
  });

  it("a full fresh lane drops the newcomer and leaves room for REQUESTs", () => {
    const intake = new Intake<string>({ inProgress: 2, fresh: 3 });
    const shed = ["d1", "d2", "d3", "d4", "d5"].filter((d) => !intake.admit(d, "fresh"));
    assert.deepEqual(shed, ["d4", "d5"], "tail drop: those already waiting keep their place");
    assert.ok(intake.admit("r1", "inProgress"), "a full fresh lane does not block a REQUEST");
    assert.ok(intake.admit("r2", "inProgress"));
    assert.ok(intake.isFull("fresh") && intake.isFull("inProgress"));
    assert.equal(intake.admit("r3", "inProgress"), false, "the in-progress lane is bounded too");
    assert.equal(intake.next(), "r1");
    assert.equal(intake.next(), "r2");
    assert.equal(intake.next(), "d1");
    assert.equal(intake.isFull("fresh"), false);
    assert.ok(intake.admit("d6", "fresh"), "room again once one was handled");
    assert.deepEqual([intake.next(), intake.next(), intake.next(), intake.next()], ["d2", "d3", "d6", undefined]);
  });

  it("while the store is behind, only clients in progress are taken; new ones keep their place", () => {
    const intake = new Intake<string>({ inProgress: 4, fresh: 4 });
    intake.admit("d1", "fresh");
    intake.admit("r1", "inProgress");
    assert.equal(intake.next(true), "r1");
    assert.equal(intake.next(true), undefined, "d1 waits");
    assert.equal(intake.size, 1);
    assert.equal(intake.next(), "d1");
  });

  it("wraps around its ring many times without losing or reordering", () => {
    const intake = new Intake<number>({ inProgress: 4, fresh: 3 });
    let expected = 0;
    for (let i = 0; i < 1000; i++) {
      assert.ok(intake.admit(i, "fresh"));
      if (i % 3 === 2) while (intake.size) assert.equal(intake.next(), expected++);
    }
    while (intake.size) assert.equal(intake.next(), expected++);
    assert.equal(expected, 1000);
  });
});

test("a client's DISCOVER still waiting when its REQUEST was handled is skipped as stale; a later DISCOVER is not", () => {
  const intake = new Intake<string>({ inProgress: 8, fresh: 8 });
  intake.admit("discover A", "fresh", "aa");
  intake.admit("discover B", "fresh", "bb");
  // A's REQUEST for another server's OFFER: A is known here now, so it goes first.
  intake.admit("request A", "inProgress", "aa");
  assert.equal(intake.next(), "request A");
  assert.equal(intake.next(), "discover B", "A's older DISCOVER is skipped");
  assert.equal(intake.takeSuperseded(), 1);
  assert.equal(intake.takeSuperseded(), 0, "counted once");
  // A DISCOVER sent after the REQUEST (the client starts over) is answered.
  intake.admit("request A again", "inProgress", "aa");
  intake.admit("discover A again", "fresh", "aa");
  assert.equal(intake.next(), "request A again");
  assert.equal(intake.next(), "discover A again");
  assert.equal(intake.next(), undefined);
});
