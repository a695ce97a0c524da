import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import { bootChainOf, decideFlavour, FLAVOUR_BOOTLOADERS, machineBootloaderUrl } from "./boot-chain.js";

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

test("decideFlavour: a new attempt after a stalled one gets the next flavour, round the list; what worked stays", () => {
  const WINDOW = 60_000;
  const first = decideFlavour(undefined, "ipxe.efi", "DISCOVER", 0, WINDOW);
  assert.equal(first.flavour, "ipxe.efi");
  assert.equal(first.fallback, undefined);
  // The same attempt's REQUEST, retransmissions, the PXE → HTTP boot hand-over.
  const again = decideFlavour(first.attempt, "ipxe.efi", "DISCOVER", 20_000, WINDOW);
  assert.equal(again.flavour, "ipxe.efi");
  assert.equal(again.attempt, first.attempt);
  // The machine comes back five minutes later without ever having fetched its script: it stalled.
  const second = decideFlavour(first.attempt, "ipxe.efi", "DISCOVER", 300_000, WINDOW);
  assert.equal(second.flavour, "snponly.efi");
  assert.deepEqual({ from: second.fallback?.from, to: second.fallback?.to }, { from: "ipxe.efi", to: "snponly.efi" });
  assert.match(second.fallback?.reason ?? "", /ipxe\.efi 300 s ago never fetched its boot script/);
  const third = decideFlavour(second.attempt, "ipxe.efi", "DISCOVER", 600_000, WINDOW);
  assert.equal(third.flavour, "http");
  assert.equal(decideFlavour(third.attempt, "ipxe.efi", "DISCOVER", 900_000, WINDOW).flavour, "ipxe.efi", "round");
  // snponly.efi worked: the next attempt keeps it, without a fallback.
  const worked = decideFlavour({ ...second.attempt, scriptSeen: true }, "ipxe.efi", "DISCOVER", 900_000, WINDOW);
  assert.equal(worked.flavour, "snponly.efi");
  assert.equal(worked.fallback, undefined);
  assert.equal(worked.attempt.scriptSeen, false, "a new attempt starts unproven");
  assert.equal(worked.attempt.bootloaderFetched, false);
});

test("decideFlavour: a DORA slower than the window is one attempt (REQUESTs and DISCOVERs before the bootloader)", () => {
  // A loaded server: OVMF's DISCOVER answered at 0, its OFFER lost, the DISCOVER again at 4 s and
  // its REQUEST at 9 s, all past a 5 s window. None of them is a new attempt.
  const WINDOW = 5_000;
  const first = decideFlavour(undefined, "ipxe.efi", "DISCOVER", 0, WINDOW);
  const retransmitted = decideFlavour(first.attempt, "ipxe.efi", "DISCOVER", 4_000, WINDOW);
  assert.equal(retransmitted.attempt, first.attempt);
  const request = decideFlavour(first.attempt, "ipxe.efi", "REQUEST", 9_000, WINDOW);
  assert.equal(request.flavour, "ipxe.efi");
  assert.equal(request.fallback, undefined, "its own REQUEST is no stalled attempt");
  assert.equal(request.attempt, first.attempt);
  // A REQUEST never begins an attempt, however late; a proxyDHCP INFORM on 4011 neither.
  assert.equal(decideFlavour(first.attempt, "ipxe.efi", "REQUEST", 600_000, WINDOW).attempt, first.attempt);
  assert.equal(decideFlavour(first.attempt, "ipxe.efi", "INFORM", 600_000, WINDOW).attempt, first.attempt);
  // Where no bootloader fetch is seen, the window still ends the attempt: a DISCOVER past it is new.
  assert.equal(decideFlavour(first.attempt, "ipxe.efi", "DISCOVER", 9_000, WINDOW).flavour, "snponly.efi");
});

test("decideFlavour: a DISCOVER after the bootloader was fetched, the script never, falls back at once", () => {
  // A quick reboot (a power cycle of a machine whose iPXE hung) 10 s after the first answer, well
  // inside the default window: the attempt it cut had fetched ipxe.efi and nothing more.
  const WINDOW = 60_000;
  const first = decideFlavour(undefined, "ipxe.efi", "DISCOVER", 0, WINDOW);
  const fetched = { ...first.attempt, bootloaderFetched: true };
  // Its REQUEST after the fetch (none comes, but a late duplicate might): still that attempt.
  assert.equal(decideFlavour(fetched, "ipxe.efi", "REQUEST", 8_000, WINDOW).attempt, fetched);
  const next = decideFlavour(fetched, "ipxe.efi", "DISCOVER", 10_000, WINDOW);
  assert.equal(next.flavour, "snponly.efi");
  assert.deepEqual({ from: next.fallback?.from, to: next.fallback?.to }, { from: "ipxe.efi", to: "snponly.efi" });
  assert.match(next.fallback?.reason ?? "", /10 s ago fetched its bootloader but never its boot script/);
  assert.deepEqual(next.attempt, {
    flavour: "snponly.efi",
    answeredAt: 10_000,
    bootloaderFetched: false,
    scriptSeen: false,
  });
  // One whose script came: a quick reboot is a new attempt with the same flavour, no fallback.
  const booted = decideFlavour({ ...fetched, scriptSeen: true }, "ipxe.efi", "DISCOVER", 10_000, WINDOW);
  assert.equal(booted.flavour, "ipxe.efi");
  assert.equal(booted.fallback, undefined);
  assert.notEqual(booted.attempt.answeredAt, 0, "a new attempt");
});

test("the iPXE flavours' bootloaders: ipxe.efi and snponly.efi (`http` gets ipxe.efi by URL)", () => {
  assert.deepEqual([...FLAVOUR_BOOTLOADERS], ["ipxe.efi", "snponly.efi"]);
});
