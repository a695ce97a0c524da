import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FALLBACK_LAB_MACHINE } from "../../src/lab/lab-config.js";
import { bootMachineAgain, labDown, labNodes, labUp, stopMachine, watchLab } from "../../src/lab/lab.js";
import { Milestone, plainText } from "../../src/lab/progress.js";
import { requireBinaries } from "../support/netns.js";
import { firmwarePresent, failureReport, watchUntil } from "./lab-harness.js";

test("Boot chain fallback: a UEFI machine whose attempt stalls before its script gets snponly.efi next time, on its timeline", {
  timeout: 10 * 60_000,
}, async (t) => {
  if (!requireBinaries(t, "ip", "qemu-system-x86_64", "busybox") || !firmwarePresent(t)) return;
  const stateDir = mkdtempSync(join(tmpdir(), "centra-e2e-lab-"));
  const namespace = `ce2e-${process.pid}-fallback`;
  t.after(() => labDown({ stateDir, namespace }));
  const lab = await labUp({
    stateDir,
    namespace,
    machines: [FALLBACK_LAB_MACHINE],
    // The default boot.attemptWindow (a minute): the next attempt comes about 10 s after the cut
    // one, and it is told apart by the cut one's bootloader download, not by the time between them.
    dhcpMode: "server",
    say: (line) => t.diagnostic(line),
  });
  const machine = lab.state.machines[0]!;
  // The stall: the firmware got ipxe.efi, and the machine goes dark before iPXE asks for any script
  // (as one whose NIC hangs iPXE at "initialising devices" until someone power-cycles it).
  const first = (await watchUntil(machine.serialLog, /NBP file downloaded successfully/, 180_000)) ?? "";
  await stopMachine(lab, machine.name);
  assert.match(first, /NBP filename is ipxe\.efi/, `first attempt:\n${first.slice(-2000)}`);
  assert.doesNotMatch(plainText(readFileSync(machine.serialLog, "latin1")), /boot\.ipxe/, "no script before the cut");

  const again = await bootMachineAgain(lab, machine.name);
  const [progress] = await watchLab(
    { state: { ...lab.state, machines: [again] }, exits: lab.exits },
    {
      timeoutMs: 5 * 60_000,
      onMilestone: (q, m) => t.diagnostic(`${q.machine.name} second attempt: ${m} at ${q.times[m]?.toFixed(1)} s`),
    },
  );
  assert.ok(progress, "no progress for the second attempt");
  const p = progress;
  assert.ok(p.report.reached.has(Milestone.CalledBack), failureReport(p, "second attempt did not call back"));
  assert.equal(p.report.callbackStatus, 200, failureReport(p, "callback refused"));
  const serial = plainText(readFileSync(again.serialLog, "latin1"));
  assert.match(serial, /NBP filename is snponly\.efi/, failureReport(p, "second attempt did not get snponly.efi"));
  // The reason, with the node, in the server's log; the same goes on the node's timeline (boot-fallback).
  const log = readFileSync(join(stateDir, "server.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes("boot attempt stalled"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(log.length, 1, JSON.stringify(log));
  assert.deepEqual(
    { from: log[0]!.from, to: log[0]!.to, mac: log[0]!.mac },
    { from: "ipxe.efi", to: "snponly.efi", mac: FALLBACK_LAB_MACHINE.mac },
  );
  assert.match(String(log[0]!.nodeId), /^n-/);
  assert.equal(labNodes(lab.state).find((n) => n.macs.includes(FALLBACK_LAB_MACHINE.mac))?.state, "provisioned");
});
