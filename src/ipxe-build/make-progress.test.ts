import assert from "node:assert/strict";
import { test } from "node:test";
import { formatProgress, startProgress, stepProgress } from "./make-progress.js";
import { DEFAULT_TARGET_NAMES, selectTargets } from "./targets.js";

test("make's tagged lines become one progress state: planned by [DEPS], counted by [BUILD], finished by [FINISH]", () => {
  const lines = [
    "  [DEPS] core/main.c",
    "  [DEPS] core/malloc.c",
    "  [PARSEROM]",
    "drivers/net/foo.c:12: warning: unused variable",
    "  [BUILD] bin/main.o",
    "  [BUILD] bin/malloc.o",
    "  [AR] bin/blib.a",
    "  [LD] bin/undionly.kpxe.tmp",
    "  [FINISH] bin/undionly.kpxe",
  ];
  const states = [startProgress()];
  for (const line of lines) states.push(stepProgress(states.at(-1)!, line));
  assert.equal(states[4], states[3], "an untagged line changes nothing");
  assert.equal(formatProgress("undionly.kpxe", states[5]!), "undionly.kpxe: compiling, 1 objects done: bin/main.o");
  const last = states.at(-1)!;
  assert.deepEqual([last.planned, last.compiled, last.phase, last.finished], [2, 2, "linking", ["bin/undionly.kpxe"]]);
  assert.equal(formatProgress("x", last, 20).length, 20, "cut to the width");
});

test("--targets picks by installed name, in table order, and names every unknown one", () => {
  const picked = selectTargets(["ipxe.efi", "undionly.kpxe"]);
  assert.ok("targets" in picked);
  assert.deepEqual(
    picked.targets.map((t) => t.goal),
    ["bin/undionly.kpxe", "bin-x86_64-efi/ipxe.efi"],
  );
  assert.deepEqual(selectTargets(["ipxe.efi", "ipxe.pxe", "x"]), { unknown: ["ipxe.pxe", "x"] });
  const arm = selectTargets(["ipxe-arm64.efi"]);
  assert.ok("targets" in arm && arm.targets[0]!.cross === "aarch64-linux-gnu-");
  // The virtio-net option ROM (`lab up --https`'s BIOS machines) only when named.
  const rom = selectTargets(["ipxe-virtio.rom"]);
  assert.ok("targets" in rom && rom.targets[0]!.goal === "bin/1af41041.rom" && rom.targets[0]!.kind === "rom");
  assert.deepEqual(DEFAULT_TARGET_NAMES, ["undionly.kpxe", "ipxe.efi", "snponly.efi", "ipxe-arm64.efi"]);
});
