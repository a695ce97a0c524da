import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type BootAttemptRecord,
  type BootStep,
  deliveredBootloader,
  type VerdictContext,
  phasesOf,
  verdictOf,
} from "./attempt.js";

const T0 = Date.parse("2026-11-29T20:00:00Z");
const s = (seconds: number) => T0 + seconds * 1000;

const dhcp = (at: number, message: string, reply?: string, userClass?: string): BootStep => ({
  source: "dhcp",
  at: s(at),
  message,
  bootClient: true,
  ...(reply ? { reply } : {}),
  ...(userClass ? { userClass } : {}),
});
const tftp = (at: number, outcome: "completed" | "aborted" | "failed" | "refused", bytes = 70_000): BootStep => ({
  source: "tftp",
  at: s(at),
  ms: 500,
  file: "undionly.kpxe",
  outcome,
  bytes,
  retransmissions: 0,
  ...(outcome !== "completed" ? { reason: "why" } : {}),
});
const http = (
  at: number,
  kind: "entry-script" | "machine-script" | "kernel" | "initrd",
  extra: Partial<Extract<BootStep, { source: "http" }>> = {},
): BootStep => ({
  source: "http",
  at: s(at),
  ms: 1000,
  kind,
  path: `/${kind}`,
  method: "GET",
  status: 200,
  bytes: 1000,
  size: 1000,
  complete: true,
  ...extra,
});
const install = { boot: "image", profile: "worker", image: "nixos/1", install: true };
const life = (at: number, kind: "install-boot" | "callback-succeeded" | "callback-failed" | "timeout"): BootStep => ({
  source: "lifecycle",
  at: s(at),
  kind,
});

const PXE_TO_INITRD = [
  dhcp(0, "DISCOVER", "OFFER"),
  dhcp(1, "REQUEST", "ACK"),
  tftp(2, "aborted", 0), // the ROM's tsize probe
  tftp(2, "completed"),
  dhcp(4, "DISCOVER", "OFFER", "iPXE"),
  dhcp(5, "REQUEST", "ACK", "iPXE"),
  http(6, "entry-script"),
  http(7, "machine-script", { decision: install }),
  life(7, "install-boot"),
  http(8, "kernel"),
  http(10, "initrd"),
];

function attempt(steps: BootStep[]): BootAttemptRecord {
  return { attempt: 1, mac: "52:54:00:00:00:01", startedAt: steps[0]?.at ?? T0, updatedAt: T0, steps, stepsDropped: 0 };
}

function context(now: number, extra: Partial<VerdictContext> = {}): VerdictContext {
  return {
    now: s(now),
    provisioningTimeoutMs: 600_000,
    stallMs: 120_000,
    earlierStarts: [],
    bootLoop: { attempts: 5, windowMs: 600_000 },
    ...extra,
  };
}

const table: [string, BootStep[], number, string, boolean][] = [
  ["a complete install", [...PXE_TO_INITRD, life(60, "callback-succeeded")], 61, "installed", true],
  [
    "an install the installer reported failed",
    [...PXE_TO_INITRD, life(60, "callback-failed")],
    61,
    "install-failed",
    true,
  ],
  ["waiting for the callback", PXE_TO_INITRD, 300, "in-progress", false],
  ["no callback within the timeout, before the sweep", PXE_TO_INITRD, 700, "stuck-after-kernel", true],
  [
    "the sweep's timeout after kernel and initrd",
    [...PXE_TO_INITRD, life(30, "timeout")],
    31,
    "stuck-after-kernel",
    true,
  ],
  ["the sweep's timeout before the kernel", [...PXE_TO_INITRD.slice(0, 8), life(30, "timeout")], 31, "timed-out", true],
  [
    "a selector's image (no install)",
    [
      ...PXE_TO_INITRD.slice(0, 7),
      http(7, "machine-script", { decision: { boot: "image", profile: "worker" } }),
      http(8, "kernel"),
      http(10, "initrd"),
    ],
    12,
    "booted",
    true,
  ],
  [
    "a provisioned machine sent to its disk",
    [...PXE_TO_INITRD.slice(0, 7), http(7, "machine-script", { decision: { boot: "localdisk" } })],
    8,
    "local-disk",
    true,
  ],
  [
    "a retired machine",
    [...PXE_TO_INITRD.slice(0, 7), http(7, "machine-script", { decision: { boot: "none", reason: "retired" } })],
    8,
    "refused",
    true,
  ],
  [
    "an unknown machine at the menu",
    [...PXE_TO_INITRD.slice(0, 7), http(7, "machine-script", { decision: { boot: "menu" } })],
    200,
    "menu",
    true,
  ],
  ["the tsize probe alone is not an abort while it is fresh", PXE_TO_INITRD.slice(0, 3), 5, "in-progress", false],
  [
    "TFTP aborted and nothing after",
    [...PXE_TO_INITRD.slice(0, 2), tftp(2, "aborted", 30_000)],
    200,
    "tftp-aborted",
    true,
  ],
  ["TFTP timed out and nothing after", [...PXE_TO_INITRD.slice(0, 2), tftp(2, "failed")], 200, "tftp-failed", true],
  ["TFTP refused the file", [...PXE_TO_INITRD.slice(0, 2), tftp(2, "refused", 0)], 200, "tftp-failed", true],
  ["DHCP acknowledged, nothing fetched", PXE_TO_INITRD.slice(0, 2), 200, "no-bootloader", true],
  ["offered, never requested", PXE_TO_INITRD.slice(0, 1), 200, "dhcp-incomplete", true],
  [
    "the kernel cut short",
    [...PXE_TO_INITRD.slice(0, 9), http(8, "kernel", { complete: false, bytes: 400 })],
    200,
    "download-failed",
    true,
  ],
  [
    "the initrd answered 404",
    [...PXE_TO_INITRD.slice(0, 10), http(10, "initrd", { status: 404 })],
    200,
    "download-failed",
    true,
  ],
];

for (const [name, steps, now, expected, final] of table) {
  test(`verdict: ${name} → ${expected}`, () => {
    const verdict = verdictOf(attempt(steps), context(now));
    assert.equal(verdict.verdict, expected, verdict.reason);
    assert.equal(verdict.final, final);
    assert.ok(verdict.reason.length > 0);
  });
}

test("verdict: the fifth start within the window is a boot loop; an install is never one", () => {
  const steps = PXE_TO_INITRD.slice(0, 2);
  const earlier = [s(-400), s(-300), s(-200), s(-100)];
  const loop = verdictOf(attempt(steps), context(3, { earlierStarts: earlier }));
  assert.equal(loop.verdict, "boot-loop");
  assert.equal(loop.final, false, "still moving: waiting may yet change it");
  assert.match(loop.reason, /5 boot attempts within 10 min/);
  // Starts older than the window do not count.
  assert.equal(
    verdictOf(attempt(steps), context(3, { earlierStarts: [s(-4000), ...earlier.slice(1)] })).verdict,
    "in-progress",
  );
  const installed = verdictOf(
    attempt([...PXE_TO_INITRD, life(60, "callback-succeeded")]),
    context(61, { earlierStarts: earlier }),
  );
  assert.equal(installed.verdict, "installed");
});

test("phases: from DHCP to the callback, in order, each spanning its steps", () => {
  const phases = phasesOf(attempt([...PXE_TO_INITRD, life(60, "callback-succeeded")]), s(100));
  assert.deepEqual(
    phases.map((p) => [p.phase, (p.start - T0) / 1000, (p.end - T0) / 1000]),
    [
      ["dhcp", 0, 5],
      ["tftp", 2, 2.5],
      ["scripts", 6, 8],
      ["kernel", 8, 9],
      ["initrd", 10, 11],
      ["install", 11, 60],
    ],
  );
  // While the callback is awaited, the install phase runs to now.
  assert.equal(phasesOf(attempt(PXE_TO_INITRD), s(100)).at(-1)?.end, s(100));
});

test("deliveredBootloader: a completed TFTP transfer or a whole GET of /boot/ipxe/; never a size probe", () => {
  assert.equal(deliveredBootloader(tftp(1, "completed")), "undionly.kpxe");
  // OVMF's first RRQ asks only for the size (tsize) and ends with an ERROR: nothing delivered.
  assert.equal(deliveredBootloader(tftp(1, "aborted", 0)), undefined);
  assert.equal(deliveredBootloader(tftp(1, "failed")), undefined);
  const bootloader = { kind: "bootloader" as const, path: "/boot/ipxe/machine/52-54-00-12-34-56/ipxe.efi" };
  assert.equal(deliveredBootloader(http(1, "kernel", bootloader)), bootloader.path);
  assert.equal(deliveredBootloader(http(1, "kernel", { ...bootloader, method: "HEAD" })), undefined);
  assert.equal(deliveredBootloader(http(1, "kernel", { ...bootloader, status: 404 })), undefined);
  assert.equal(deliveredBootloader(http(1, "kernel", { ...bootloader, complete: false })), undefined);
  assert.equal(deliveredBootloader(http(1, "entry-script")), undefined);
  assert.equal(deliveredBootloader(dhcp(1, "DISCOVER", "OFFER")), undefined);
});
