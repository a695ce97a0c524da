import assert from "node:assert/strict";
import { test } from "node:test";
import type { BootObservation } from "../contracts/boot-observation.js";
import { ATTEMPT_IDLE_MS, BootTimeline } from "./collector.js";

const MAC = "52:54:00:00:00:01";
const ADDRESS = "10.0.100.101";

function clock(start = Date.parse("2026-11-29T20:00:00Z")) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function dhcp(at: number, message: string, reply: string, extra: Partial<BootObservation> = {}): BootObservation {
  return {
    source: "dhcp",
    at,
    mac: MAC,
    message,
    reply,
    address: ADDRESS,
    firmware: "bios",
    arch: 0,
    bootClient: true,
    ...extra,
  } as BootObservation;
}

function tftp(at: number, client = ADDRESS): BootObservation {
  return {
    source: "tftp",
    at,
    client,
    file: "undionly.kpxe",
    outcome: "completed",
    bytes: 70_000,
    size: 70_000,
    ms: 300,
    retransmissions: 0,
  };
}

function http(at: number, kind: "entry-script" | "machine-script" | "kernel", mac?: string): BootObservation {
  return {
    source: "http",
    scheme: "http",
    at,
    client: ADDRESS,
    path: `/${kind}`,
    kind,
    method: "GET",
    status: 200,
    bytes: 10,
    size: 10,
    ms: 5,
    complete: true,
    ...(mac ? { mac, decision: { boot: "image", profile: "worker", install: true } } : {}),
  };
}

test("TFTP and HTTP are joined to the MAC through the address DHCP handed out; the chainload is one attempt", () => {
  const c = clock();
  const timeline = new BootTimeline({ now: c.now });
  timeline.observe(dhcp(c.now(), "DISCOVER", "OFFER"));
  timeline.observe(dhcp(c.advance(100), "DISCOVER", "OFFER")); // a retransmission: folded
  timeline.observe(dhcp(c.advance(500), "REQUEST", "ACK"));
  const tftpEnd = c.advance(1000);
  timeline.observe(tftp(tftpEnd));
  // iPXE's own DHCP after the TFTP chainload: the same boot.
  timeline.observe(dhcp(c.advance(1000), "DISCOVER", "OFFER", { userClass: "iPXE" }));
  timeline.observe(dhcp(c.advance(100), "REQUEST", "ACK", { userClass: "iPXE" }));
  timeline.observe(http(c.advance(100), "entry-script"));
  timeline.observe(http(c.advance(100), "machine-script", MAC));
  timeline.observe(http(c.advance(100), "kernel"));
  // Someone else's download from an address DHCP never tied to a MAC: nobody's.
  timeline.observe(tftp(c.advance(100), "10.0.100.250"));

  const [attempt, ...more] = timeline.attemptsOf([MAC]);
  assert.equal(more.length, 0);
  assert.ok(attempt);
  assert.deepEqual(
    attempt.steps.map((s) => (s.source === "dhcp" ? `${s.message}${s.repeats ? `×${s.repeats + 1}` : ""}` : s.source)),
    ["DISCOVER×2", "REQUEST", "tftp", "DISCOVER", "REQUEST", "http", "http", "http"],
  );
  assert.equal(attempt.firmware, "bios");
  assert.equal(attempt.address, ADDRESS);
  assert.equal(attempt.profile, "worker");
  assert.equal(timeline.counters.unattributed, 1);
  // The TFTP step begins when the transfer began, not when it was reported.
  const step = attempt.steps[2]!;
  assert.equal(step.source === "tftp" && step.at, tftpEnd - 300);
});

test("a new DISCOVER after the kernel, or after a quiet spell, starts a new attempt; each machine keeps its newest N", () => {
  const c = clock();
  const timeline = new BootTimeline({ now: c.now, limits: { attemptsPerMachine: 3 } });
  for (let boot = 0; boot < 5; boot++) {
    timeline.observe(dhcp(c.advance(1000), "DISCOVER", "OFFER", { userClass: "iPXE" }));
    timeline.observe(http(c.advance(100), "machine-script", MAC));
  }
  const attempts = timeline.attemptsOf([MAC]);
  assert.deepEqual(
    attempts.map((a) => a.attempt),
    [5, 4, 3],
    "newest first, the oldest two dropped",
  );
  assert.equal(timeline.counters.attemptsEvicted, 2);
  // A DHCP REQUEST long after the last news: a new attempt too.
  timeline.observe(dhcp(c.advance(ATTEMPT_IDLE_MS), "REQUEST", "ACK"));
  assert.equal(timeline.attemptsOf([MAC])[0]?.attempt, 6);
});

test("an operating system's DHCP joins a recent attempt but never starts one", () => {
  const c = clock();
  const timeline = new BootTimeline({ now: c.now });
  timeline.observe(dhcp(c.now(), "REQUEST", "ACK", { bootClient: false, mac: "52:54:00:00:00:99" }));
  assert.equal(timeline.size, 0);
  timeline.observe(dhcp(c.now(), "DISCOVER", "OFFER"));
  timeline.observe(dhcp(c.advance(30_000), "REQUEST", "ACK", { bootClient: false }));
  assert.equal(timeline.attemptsOf([MAC])[0]?.steps.length, 2);
});

test("a stranger spraying MACs fills only the strangers' pool: machines the inventory holds stay, memory stays bounded", () => {
  const c = clock();
  const known = new Set(["52:54:00:00:00:01", "52:54:00:00:00:02"]);
  const timeline = new BootTimeline({
    now: c.now,
    isKnown: (mac) => known.has(mac),
    limits: { machines: 10, strangers: 50, stepsPerAttempt: 20 },
  });
  for (const mac of known) timeline.observe(dhcp(c.now(), "DISCOVER", "OFFER", { mac, address: undefined }));
  for (let i = 0; i < 10_000; i++) {
    const mac = `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
    timeline.observe(dhcp(c.advance(1), "DISCOVER", "OFFER", { mac, address: `10.1.${(i >> 8) & 255}.${i & 255}` }));
  }
  assert.equal(timeline.size, 52);
  for (const mac of known) assert.equal(timeline.attemptsOf([mac]).length, 1, `${mac} kept`);
  assert.equal(timeline.counters.machinesEvicted, 10_000 - 50);
  assert.ok(timeline.snapshot().addresses.length <= 60, "the address map is capped too");
  // One machine retrying forever: its steps are capped, the rest counted.
  for (let i = 0; i < 100; i++) timeline.observe(tftp(c.advance(120_000), "10.1.39.15"));
  const flooded = timeline.attemptsOf(["02:00:00:00:27:0f"]);
  assert.ok(flooded.every((a) => a.steps.length <= 20));
});

test("a snapshot restores every attempt and the attempt numbering goes on", () => {
  const c = clock();
  const first = new BootTimeline({ now: c.now });
  first.observe(dhcp(c.now(), "DISCOVER", "OFFER"));
  first.observe(tftp(c.advance(1000)));
  const saved = JSON.parse(JSON.stringify(first.snapshot()));
  const second = new BootTimeline({ now: c.now });
  second.restore(saved);
  assert.deepEqual(second.attemptsOf([MAC]), first.attemptsOf([MAC]));
  // The address is still tied: a download after the restart joins the machine.
  second.observe(http(c.advance(1000), "kernel"));
  assert.equal(second.attemptsOf([MAC])[0]?.steps.length, 3);
  second.observe(dhcp(c.advance(ATTEMPT_IDLE_MS), "DISCOVER", "OFFER"));
  assert.equal(second.attemptsOf([MAC])[0]?.attempt, 2);
});
