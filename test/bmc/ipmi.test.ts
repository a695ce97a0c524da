import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { after, before, test } from "node:test";
import { BmcError, IpmitoolClient } from "../../src/bmc/index.js";
import { startIpmiSim, type IpmiSim } from "../support/ipmi-sim.js";
import { findBinary, isCI } from "../support/netns.js";

/**
 * The IPMI client against OpenIPMI's real `ipmi_sim` over RMCP+ (lanplus) on a loopback address of
 * its own: power, the boot flags with their read-back (ipmi_sim, like some real BMCs, keeps the
 * device but ignores `efiboot` and the persistent bit: the mismatch must be reported), identity,
 * and each failure class within a bounded time.
 */

let sim: IpmiSim;
let ready = false;

before(async () => {
  const missing = ["ipmi_sim", "ipmitool"].filter((name) => findBinary(name) === undefined);
  if (missing.length > 0) {
    // Each test then skips itself; under CI a missing peer fails instead.
    if (isCI) throw new Error(`missing ${missing.join(", ")} (scripts/bootstrap installs openipmi and ipmitool)`);
    return;
  }
  sim = await startIpmiSim();
  ready = true;
});
after(async () => {
  if (ready) await sim.stop();
});

function client(password = sim.password, port = sim.port, address = sim.address) {
  return new IpmitoolClient(
    { protocol: "ipmi", address, port, username: sim.username, password },
    { attemptMs: 6000, cipherSuite: 3 },
  );
}

test("power: status, on, off, cycle from off, reset, as the chassis is told", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  const bmc = client();
  assert.equal(await bmc.powerStatus(), "off");
  await bmc.power("on");
  assert.equal(sim.power(), "1");
  assert.equal(await bmc.powerStatus(), "on");
  await bmc.power("reset");
  assert.ok(sim.calls().includes("0x20 set reset 1"), sim.calls().join("\n"));
  await bmc.power("off");
  assert.equal(await bmc.powerStatus(), "off");
  // From off, cycle means on (a BMC may ignore a cycle of a machine that is off).
  await bmc.power("cycle");
  assert.equal(await bmc.powerStatus(), "on");
  await bmc.power("off");
});

test("boot device: PXE is set and read back; the ignored efiboot is reported, not swallowed", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  const bmc = client();
  const pxe = await bmc.setBootDevice("pxe", { efi: true });
  assert.equal(pxe.readBack.device, "pxe");
  assert.ok(sim.calls().includes("0x20 set boot pxe"), sim.calls().join("\n"));
  assert.match(pxe.mismatch ?? "", /legacy mode where UEFI \(efiboot\) was set/);

  const legacy = await bmc.setBootDevice("pxe");
  assert.equal(legacy.mismatch, undefined, "a legacy one-time PXE boot is what ipmi_sim keeps");

  const disk = await bmc.setBootDevice("disk", { persistent: true });
  assert.equal(disk.readBack.device, "disk");
  assert.match(disk.mismatch ?? "", /one-time where persistent was set/);
  assert.equal((await bmc.getBootDevice()).device, "disk");

  await assert.rejects(
    bmc.setBootDevice("http"),
    (e: unknown) => e instanceof BmcError && e.code === "BMC_UNSUPPORTED",
  );
});

test("identity: the system GUID as a UUID; IPMI offers no NIC MACs", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  const identity = await client().identity();
  // lan.conf's guid 0123…cdef, sent least significant byte first (IPMI v2.0 §22.14).
  assert.equal(identity.uuid, "efcdab89-6745-2301-efcd-ab8967452301");
  assert.deepEqual(identity.macs, []);
});

test("a wrong password is BMC_CREDENTIALS, at once and without a retry", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  const started = Date.now();
  await assert.rejects(client("not-the-password").powerStatus(), (e: unknown) => {
    assert.ok(e instanceof BmcError);
    assert.equal(e.code, "BMC_CREDENTIALS", e.message);
    assert.ok(!e.message.includes("not-the-password"));
    return true;
  });
  assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
});

test("nothing at the address is BMC_UNREACHABLE within attempts × attemptMs", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  // A UDP socket that reads and never answers: a BMC that is down, or a firewall that drops.
  const silent: Socket = createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  t.after(() => silent.close());
  const bmc = new IpmitoolClient(
    { protocol: "ipmi", address: "127.0.0.1", port: silent.address().port, username: "admin", password: sim.password },
    { attemptMs: 3000, attempts: 2, cipherSuite: 3 },
  );
  const started = Date.now();
  await assert.rejects(bmc.power("on"), (e: unknown) => e instanceof BmcError && e.code === "BMC_UNREACHABLE");
  const took = Date.now() - started;
  assert.ok(took < 2 * 3000 + 3000, `took ${took} ms`);
});

test("the password never shows in a process listing while ipmitool runs, and its file is gone after", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  const silent: Socket = createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  t.after(() => silent.close());
  const secret = `S3cret-${process.pid}-${Date.now()}`;
  const bmc = new IpmitoolClient(
    { protocol: "ipmi", address: "127.0.0.1", port: silent.address().port, username: "admin", password: secret },
    { attemptMs: 4000, attempts: 1, cipherSuite: 3 },
  );
  const before = readdirSync(tmpdir()).filter((n) => n.startsWith("centra-pxe-ipmi-"));
  const running = bmc.powerStatus().catch((e: unknown) => e);
  let seenIpmitool = false;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 100));
    // What any user on the host sees: every process's command line, and with `e` its environment.
    const listing = execFileSync("ps", ["-eww", "-o", "args"], { encoding: "utf8" });
    const withEnv = execFileSync("ps", ["eww", "-A"], { encoding: "utf8" });
    if (listing.includes(silent.address().port.toString()) && listing.includes("ipmitool")) seenIpmitool = true;
    assert.ok(!listing.includes(secret), "the password is on a command line");
    assert.ok(!withEnv.includes(secret), "the password is in an environment");
  }
  assert.ok(seenIpmitool, "ipmitool was never seen running: the test proved nothing");
  assert.ok((await running) instanceof BmcError);
  const left = readdirSync(tmpdir()).filter((n) => n.startsWith("centra-pxe-ipmi-") && !before.includes(n));
  assert.deepEqual(left, [], "the password file outlived the run");
});

test("a BMC that opens the session and then hangs is BMC_TIMEOUT, bounded, not tried twice as a dead one", async (t) => {
  if (!ready) return t.skip("no ipmi_sim");
  // A relay in front of ipmi_sim that passes the session's set-up and ipmitool's first in-session
  // requests (privilege level, its PICMG/VSO probes: five with ipmitool 1.8.19), then drops the rest:
  // the command itself gets no answer, as from a BMC stuck behind its own lock.
  const front: Socket = createSocket("udp4");
  const back: Socket = createSocket("udp4");
  let client: { address: string; port: number } | undefined;
  let inSession = 0;
  back.on("message", (message) => client && front.send(message, client.port, client.address));
  front.on("message", (message, from) => {
    client = from;
    // RMCP+ (auth type 0x06), IPMI payload (type 0), a session id: a request inside the session.
    if (message[4] === 0x06 && (message[5]! & 0x3f) === 0 && message.readUInt32LE(6) !== 0 && ++inSession > 5) return;
    back.send(message, sim.port, sim.address);
  });
  await new Promise<void>((r) => front.bind(0, "127.0.0.1", r));
  t.after(() => {
    front.close();
    back.close();
  });
  const bmc = new IpmitoolClient(
    {
      protocol: "ipmi",
      address: "127.0.0.1",
      port: front.address().port,
      username: sim.username,
      password: sim.password,
    },
    { attemptMs: 4000, attempts: 2, cipherSuite: 3 },
  );
  const started = Date.now();
  await assert.rejects(bmc.powerStatus(), (e: unknown) => {
    assert.ok(e instanceof BmcError);
    assert.equal(e.code, "BMC_TIMEOUT", e.message);
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took < 2 * 4000 + 2000, `took ${took} ms`);
});
