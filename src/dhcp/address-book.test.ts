import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AddressBook } from "./address-book.js";

describe("AddressBook (what addressOf answers from)", () => {
  it("one address per MAC and one MAC per address; expiry ends a binding", () => {
    const book = new AddressBook();
    book.bind("a", 1, 100);
    book.bind("b", 2, 100);
    assert.equal(book.addressOf("a", 50), 1);
    book.bind("a", 3, 100);
    assert.equal(book.addressOf("a", 50), 3, "a moved");
    book.bind("c", 2, 100);
    assert.equal(book.addressOf("b", 50), undefined, "2 now belongs to c");
    assert.equal(book.addressOf("c", 100), undefined, "expired");
    book.unbindAddress(3);
    assert.equal(book.addressOf("a", 50), undefined, "released or declined");
  });

  it("is bounded: past its capacity the oldest binding is forgotten", () => {
    const book = new AddressBook(3);
    for (let i = 0; i < 10; i++) book.bind(`m${i}`, i, 100);
    assert.equal(book.size, 3);
    assert.equal(book.addressOf("m9", 0), 9);
    assert.equal(book.addressOf("m0", 0), undefined);
  });
});
