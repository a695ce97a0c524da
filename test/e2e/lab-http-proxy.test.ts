import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { HTTP_BOOT_LAB_MACHINE, SEED_LAB_MACHINES } from "../../src/lab/lab-config.js";
import { labDown } from "../../src/lab/lab.js";
import { namespaceExists } from "../../src/lab/network.js";
import { plainText } from "../../src/lab/progress.js";
import { bootLab, failureReport, assertBootedAsRegistered } from "./lab-harness.js";

test("UEFI HTTP boot: OVMF with PXE off fetches ipxe.efi over HTTP, no TFTP at all", {
  timeout: 10 * 60_000,
}, async (t) => {
  const run = await bootLab(t, [HTTP_BOOT_LAB_MACHINE], "server");
  if (!run) return;
  assertBootedAsRegistered(run, HTTP_BOOT_LAB_MACHINE.name);
  const serial = plainText(readFileSync(run.progress.get(HTTP_BOOT_LAB_MACHINE.name)!.machine.serialLog, "latin1"));
  assert.match(serial, /Start HTTP Boot over IPv4/);
  assert.match(serial, /URI: http:\/\/10\.0\.100\.10\/boot\/ipxe\/ipxe\.efi/);
  assert.doesNotMatch(serial, /Start PXE over IPv4/);
  // Nothing from this machine's address reached the TFTP server.
  const address = run.progress.get(HTTP_BOOT_LAB_MACHINE.name)!.report.address!;
  const tftpLines = run.serverLog.split("\n").filter((l) => l.includes('"part":"tftp"') && l.includes(address));
  assert.deepEqual(tftpLines, [], "HTTP boot must not touch TFTP");

  // `lab down` leaves nothing behind, and a second run is a no-op (the test's own cleanup runs it again).
  await labDown({ stateDir: run.stateDir, namespace: run.state.namespace });
  await labDown({ stateDir: run.stateDir, namespace: run.state.namespace });
  assert.ok(!namespaceExists(run.state.namespace), "namespace removed");
  assert.ok(!existsSync(run.stateDir), "state directory removed");
  for (const proc of [run.state.server, ...run.state.machines.map((m) => m.process)]) {
    if (!proc) continue;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${proc.pid}/cmdline`, "utf8");
    } catch {
      /* gone */
    }
    // A recycled PID running something else is not ours.
    assert.ok(!cmdline.includes(proc.marker), `process ${proc.pid} (${proc.marker}) still running`);
  }
});

test("proxyDHCP: a foreign DHCP server (dnsmasq, addresses only) beside ours in proxy mode boots BIOS and UEFI", {
  timeout: 10 * 60_000,
}, async (t) => {
  const machines = SEED_LAB_MACHINES.filter((m) => "profile" in m.expect);
  const run = await bootLab(t, machines, "proxy");
  if (!run) return;
  const leases = readFileSync(join(run.stateDir, "foreign-dhcp.leases"), "utf8");
  for (const m of machines) {
    assertBootedAsRegistered(run, m.name);
    const p = run.progress.get(m.name)!;
    // The address came from dnsmasq (its lease file has it), not from our server.
    assert.ok(
      p.report.address && leases.includes(`${m.mac} ${p.report.address}`),
      failureReport(p, `address ${p.report.address} is not one of dnsmasq's leases:\n${leases}`),
    );
  }
});
