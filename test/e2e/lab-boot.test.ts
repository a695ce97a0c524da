import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { LAB_SERVER_ADDRESS, SEED_LAB_MACHINES } from "../../src/lab/lab-config.js";
import { labNodes } from "../../src/lab/lab.js";
import { LabFirmware } from "../../src/lab/machines.js";
import { Milestone, plainText } from "../../src/lab/progress.js";
import {
  bootLab,
  failureReport,
  assertBootedAsRegistered,
  labApi,
  bootsOf,
  stepWords,
  assertCompleteTimeline,
  assertNextBootIsLocalDisk,
} from "./lab-harness.js";

test("BIOS (SeaBIOS + iPXE ROM) and UEFI (OVMF PXE, ipxe.efi over TFTP) boot to the lab initrd; an unknown MAC meets the menu", {
  timeout: 10 * 60_000,
}, async (t) => {
  const run = await bootLab(t, SEED_LAB_MACHINES, "server");
  if (!run) return;
  assertBootedAsRegistered(run, "node01");
  assertBootedAsRegistered(run, "node02");
  assertCompleteTimeline(t, run, "node01", false);
  assertCompleteTimeline(t, run, "node02", true);
  // Registered machines get their fixed addresses from our DHCP server.
  assert.equal(run.progress.get("node01")!.report.address, "10.0.100.50");
  assert.equal(run.progress.get("node02")!.report.address, "10.0.100.64");
  // node02 fetched its bootloader by TFTP: OVMF's PXE names the NBP it downloaded.
  const node02Serial = plainText(readFileSync(run.progress.get("node02")!.machine.serialLog, "latin1"));
  assert.match(node02Serial, /NBP filename is ipxe\.efi/);
  assert.match(node02Serial, /NBP file downloaded successfully/);

  const node03 = run.progress.get("node03")!;
  assert.ok(node03.report.reached.has(Milestone.Menu), failureReport(node03, "did not show the menu"));
  const menu = plainText(readFileSync(node03.machine.serialLog, "latin1"));
  // The seed's three menu items.
  for (const item of ["Control Plane Node", "Worker Node", "All-in-One Node"])
    assert.ok(menu.includes(item), failureReport(node03, `menu without "${item}"`));
  assert.ok(!node03.report.reached.has(Milestone.Initrd), "an unknown machine must not boot an image before a choice");

  await assertNextBootIsLocalDisk(t, run, ["node01", "node02"]);
  // The second boots are attempts of their own, judged local-disk; the installs stay as they were.
  for (const name of ["node01", "node02"]) {
    const { boots } = bootsOf(run, name);
    assert.deepEqual(
      boots.map((b) => b.verdict),
      ["local-disk", "installed"],
      `${name}: ${JSON.stringify(boots.map((b) => [b.verdict, b.reason]))}`,
    );
  }
});

test("a machine whose initrd never calls back is flagged stuck after the kernel, and alerted", {
  timeout: 10 * 60_000,
}, async (t) => {
  // One BIOS machine (the quickest boot), its callback sent to a port nobody answers, a short timeout.
  const machine = SEED_LAB_MACHINES.find((m) => m.firmware === LabFirmware.BiosIpxeRom && "profile" in m.expect)!;
  const run = await bootLab(t, [machine], "server", {
    provisioning: { timeout: "30s", apiUrl: `http://${LAB_SERVER_ADDRESS}:9/api/v1` },
  });
  if (!run) return;
  const p = run.progress.get(machine.name)!;
  assert.ok(p.report.reached.has(Milestone.Initrd), failureReport(p, "never reached the lab initrd"));
  assert.ok(!p.report.reached.has(Milestone.CalledBack), failureReport(p, "called back after all"));
  // The deadline runs 30 s from the install boot; the sweep looks every 7.5 s.
  const deadline = Date.now() + 120_000;
  let node = labNodes(run.state).find((n) => n.macs.includes(machine.mac));
  while (node?.state !== "failed" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    node = labNodes(run.state).find((n) => n.macs.includes(machine.mac));
  }
  assert.equal(node?.state, "failed", `inventory: ${JSON.stringify(node)}`);
  const { newest } = bootsOf(run, machine.name);
  const words = stepWords(newest);
  t.diagnostic(`${machine.name} timeline (${newest.verdict}: ${newest.reason}): ${words.join(" | ")}`);
  assert.equal(newest.verdict, "stuck-after-kernel", newest.reason);
  assert.ok(newest.final);
  for (const step of ["http kernel 200", "http initrd 200", "lifecycle timeout"])
    assert.ok(words.includes(step), `${step} in ${words.join(" | ")}`);
  assert.ok(!words.includes("lifecycle callback-succeeded"));
  const { alerts } = labApi<{ alerts: { labels: Record<string, string> }[] }>(run.state, "/alerts");
  assert.ok(
    alerts.some((a) => a.labels.alertname === "CentraPxeProvisioningFailed" && a.labels.mac === machine.mac),
    JSON.stringify(alerts),
  );
});
