import { test } from "node:test";
import assert from "node:assert/strict";
import { refusedRawPath } from "./raw-path.js";

test("raw request paths that could climb out are refused before decoding", () => {
  const refused = [
    "/boot/ipxe/../../etc/passwd",
    "/boot/ipxe/%2e%2e/%2e%2e/etc/passwd",
    "/boot/ipxe/%2E%2E%2Fetc",
    "/boot/images/nixos/..%2f..%2f/kernel",
    "/boot/images/nixos/current/..%5c..%5ckernel",
    "/boot/ipxe/..\\..\\etc\\passwd",
    "/boot/ipxe/undionly.kpxe%00.png",
    "/boot/ipxe/./undionly.kpxe",
    "/boot/ipxe/a\x01b",
  ];
  for (const url of refused) assert.notEqual(refusedRawPath(url), undefined, url);
});

test("ordinary paths pass, and the query is not the path's business", () => {
  for (const url of [
    "/boot/ipxe/boot.ipxe",
    "/boot/nixos/bzImage",
    "/boot/images/nixos/24.11/kernel",
    "/health",
    "/boot/ipxe/machine.ipxe?mac=52-54-00-12-34-56&serial=A%2FB..%5c",
  ]) {
    assert.equal(refusedRawPath(url), undefined, url);
  }
});
