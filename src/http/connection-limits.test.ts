import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectionCounter, clientAddressKey } from "./connection-limits.js";

test("the per-address cap admits up to the limit, per address, and gives places back on release", () => {
  const counter = new ConnectionCounter();
  for (let i = 0; i < 3; i++) assert.equal(counter.admit("10.0.0.5", 3), true);
  assert.equal(counter.admit("10.0.0.5", 3), false, "the 4th from one address");
  assert.equal(counter.admit("10.0.0.6", 3), true, "another address is not affected");
  assert.equal(counter.count("10.0.0.5"), 3, "a refusal takes no place");
  assert.equal(counter.total, 4);
  counter.release("10.0.0.5");
  assert.equal(counter.admit("10.0.0.5", 3), true);
  for (let i = 0; i < 3; i++) counter.release("10.0.0.5");
  counter.release("10.0.0.6");
  assert.equal(counter.addresses, 0, "no entry left behind for addresses that are gone");
  assert.equal(counter.total, 0);
  counter.release("10.0.0.7");
  assert.equal(counter.total, 0, "a stray release never goes negative");
});

test("limit 0 means no per-address limit", () => {
  const counter = new ConnectionCounter();
  for (let i = 0; i < 1000; i++) assert.equal(counter.admit("10.0.0.5", 0), true);
});

test("an IPv4-mapped IPv6 peer is the same client as its IPv4 form", () => {
  assert.equal(clientAddressKey("::ffff:10.0.0.5"), "10.0.0.5");
  assert.equal(clientAddressKey("10.0.0.5"), "10.0.0.5");
  assert.equal(clientAddressKey("fe80::1"), "fe80::1");
  assert.equal(clientAddressKey(undefined), "");
});
