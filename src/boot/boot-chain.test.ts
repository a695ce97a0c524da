import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import { bootChainOf, decideFlavour, machineBootloaderUrl } from "./boot-chain.js";

const config = parseConfig(`
profiles:
  secure: { image: nixos, secureBoot: true }
  plain: { image: nixos }
nodes:
  "52:54:00:00:00:01": { profile: secure }
  "52:54:00:00:00:02": { profile: secure, secureBoot: false, macs: ["52:54:00:00:00:03"] }
  "52:54:00:00:00:04": { profile: plain, secureBoot: true }
`);

test("a node's own secureBoot wins over its profile's, for each of its NICs", () => {
  assert.equal(bootChainOf(config, "52:54:00:00:00:01").secureBoot, true);
  assert.equal(bootChainOf(config, "52:54:00:00:00:02").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:03").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:04").secureBoot, true);
});

test("a machine the config does not list takes its inventory profile's chain; unknown means iPXE", () => {
  assert.equal(bootChainOf(config, "52:54:00:00:00:09", "secure").secureBoot, true);
  assert.equal(bootChainOf(config, "52:54:00:00:00:09", "plain").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:09", "no-such-profile").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:09").secureBoot, false);
});

test("ipxe and localBoot: a node's own over its profile's", () => {
  const c = parseConfig(`
profiles:
  p: { image: nixos, ipxe: snponly.efi, localBoot: sanboot }
nodes:
  "52:54:00:00:00:01": { profile: p }
  "52:54:00:00:00:02": { profile: p, ipxe: http, localBoot: exit }
`);
  assert.deepEqual(bootChainOf(c, "52:54:00:00:00:01"), {
    secureBoot: false,
    flavour: "snponly.efi",
    localBoot: "sanboot",
  });
  assert.deepEqual(bootChainOf(c, "52:54:00:00:00:02"), { secureBoot: false, flavour: "http", localBoot: "exit" });
  assert.throws(() => parseConfig(`profiles: { p: { image: n, ipxe: undionly.kpxe } }`));
});

test("localBoot: http-404 is a method of its own; a UEFI HTTP boot URL can name the machine, its file name last", () => {
  const c = parseConfig(`
profiles:
  p: { image: nixos, localBoot: http-404 }
nodes:
  "52:54:00:00:00:01": { profile: p }
  "52:54:00:00:00:02": { profile: p, localBoot: exit }
`);
  assert.equal(bootChainOf(c, "52:54:00:00:00:01").localBoot, "http-404");
  assert.equal(bootChainOf(c, "52:54:00:00:00:02").localBoot, "exit");
  assert.throws(() => parseConfig(`profiles: { p: { image: n, localBoot: http-301 } }`));
  assert.equal(
    machineBootloaderUrl("https://10.0.100.10/boot/ipxe/ipxe.efi", "52:54:00:AB:00:01"),
    "https://10.0.100.10/boot/ipxe/machine/52-54-00-ab-00-01/ipxe.efi",
  );
});

test("decideFlavour: one attempt keeps its flavour; after a stalled one the next, round the list; what worked stays", () => {
  const WINDOW = 60_000;
  const first = decideFlavour(undefined, "ipxe.efi", 0, WINDOW);
  assert.equal(first.flavour, "ipxe.efi");
  assert.equal(first.fallback, undefined);
  // The same attempt's REQUEST, retransmissions, the PXE → HTTP boot hand-over.
  const again = decideFlavour(first.attempt, "ipxe.efi", 20_000, WINDOW);
  assert.equal(again.flavour, "ipxe.efi");
  assert.equal(again.attempt, first.attempt);
  // The machine comes back five minutes later without ever having fetched its script: it stalled.
  const second = decideFlavour(first.attempt, "ipxe.efi", 300_000, WINDOW);
  assert.equal(second.flavour, "snponly.efi");
  assert.deepEqual({ from: second.fallback?.from, to: second.fallback?.to }, { from: "ipxe.efi", to: "snponly.efi" });
  assert.match(second.fallback?.reason ?? "", /ipxe\.efi 300 s ago never fetched its boot script/);
  const third = decideFlavour(second.attempt, "ipxe.efi", 600_000, WINDOW);
  assert.equal(third.flavour, "http");
  assert.equal(decideFlavour(third.attempt, "ipxe.efi", 900_000, WINDOW).flavour, "ipxe.efi", "round the list");
  // snponly.efi worked: the next attempt keeps it, without a fallback.
  const worked = decideFlavour({ ...second.attempt, scriptSeen: true }, "ipxe.efi", 900_000, WINDOW);
  assert.equal(worked.flavour, "snponly.efi");
  assert.equal(worked.fallback, undefined);
  assert.equal(worked.attempt.scriptSeen, false, "a new attempt starts unproven");
});
