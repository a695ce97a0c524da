import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type Server } from "node:net";
import { after, before, test } from "node:test";
import { BmcError, RedfishClient } from "../../src/bmc/index.js";
import { isCI } from "../support/netns.js";
import { mockupServerScript, type RedfishMockup, startRedfishMockup, vendorDir } from "../support/redfish-mockup.js";

/**
 * The Redfish client against the DMTF reference mockup (its `public-rackmount1` system): discovery,
 * reset types taken from the action's AllowableValues, the Boot override PATCH read back, an empty
 * NIC MAC, and certificate pinning over HTTPS. Then the failures a real BMC gives, each from a
 * small server that behaves that way: wrong credentials (401), nothing listening, a hang mid-answer.
 */

let plain: RedfishMockup;
let tls: RedfishMockup;
let ready = false;

before(async () => {
  if (mockupServerScript() === undefined) {
    // Each test then skips itself; under CI a missing peer fails instead.
    if (isCI) throw new Error(`no Redfish mockup under ${vendorDir()} (CENTRA_PXE_VENDOR_DIR)`);
    return;
  }
  [plain, tls] = await Promise.all([startRedfishMockup(), startRedfishMockup({ tls: true })]);
  ready = true;
});
after(async () => {
  if (ready) await Promise.all([plain.stop(), tls.stop()]);
});

function client(mockup: RedfishMockup, extra: { fingerprint?: string } = {}) {
  return new RedfishClient(
    {
      protocol: "redfish",
      address: mockup.address,
      port: mockup.port,
      scheme: mockup.scheme,
      username: "root",
      password: "calvin",
      ...extra,
    },
    { attemptMs: 5000 },
  );
}

test("discovery: UUID, serial and the NIC MACs (not the BMC's host interface, a VLAN's MAC once)", async (t) => {
  if (!ready) return t.skip("no mockup");
  const identity = await client(plain).identity();
  assert.equal(identity.uuid, "38947555-7742-3448-3784-823347823834");
  assert.equal(identity.serial, "437XR1138R2");
  assert.equal(identity.manufacturer, "Contoso");
  assert.deepEqual(identity.macs, ["12:44:6a:3b:04:11", "aa:bb:cc:dd:ee:00"]);
});

test("an empty MAC reported for a NIC falls back to its permanent address, never an empty or zero MAC", async (t) => {
  if (!ready) return t.skip("no mockup");
  const nic = "/redfish/v1/Systems/437XR1138R2/EthernetInterfaces/12446A3B8890";
  const res = await fetch(`http://${plain.address}:${plain.port}${nic}`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ MACAddress: "" }),
  });
  assert.equal(res.status, 204);
  const identity = await client(plain).identity();
  assert.deepEqual(identity.macs, ["12:44:6a:3b:04:11", "12:44:6a:3b:88:90"]);
});

test("power: status, and reset types chosen from the action's AllowableValues", async (t) => {
  if (!ready) return t.skip("no mockup");
  const bmc = client(plain);
  assert.equal(await bmc.powerStatus(), "on");
  await bmc.power("off");
  await bmc.power("reset");
  // The mockup lists no PowerCycle: a cycle of a running machine is its ForceRestart.
  await bmc.power("cycle");
  const posted = [...plain.log().matchAll(/POST: Data: \{'ResetType': '(\w+)'\}/g)].map((m) => m[1]);
  assert.deepEqual(posted, ["ForceOff", "ForceRestart", "ForceRestart"]);
});

test("boot override: PATCHed and read back; UefiHttp, which this BMC does not list, is unsupported", async (t) => {
  if (!ready) return t.skip("no mockup");
  const bmc = client(plain);
  const pxe = await bmc.setBootDevice("pxe", { efi: true });
  assert.deepEqual(pxe.readBack, {
    device: "pxe",
    persistent: false,
    efi: true,
    raw: "BootSourceOverrideTarget=Pxe Enabled=Once Mode=UEFI",
  });
  assert.equal(pxe.mismatch, undefined);
  const disk = await bmc.setBootDevice("disk", { persistent: true, efi: false });
  assert.equal(disk.readBack.device, "disk");
  assert.equal(disk.readBack.persistent, true);
  assert.equal(disk.readBack.efi, false);

  assert.equal((await bmc.getBootDevice()).device, "disk");
  await assert.rejects(
    bmc.setBootDevice("http"),
    (e: unknown) => e instanceof BmcError && e.code === "BMC_UNSUPPORTED",
  );
});

test("HTTPS: the pinned fingerprint is accepted, another is refused before anything is sent, none means untrusted", async (t) => {
  if (!ready) return t.skip("no mockup");
  assert.equal(await client(tls, { fingerprint: tls.fingerprint! }).powerStatus(), "on");
  // Lower case without colons is the same pin.
  assert.equal(
    await client(tls, { fingerprint: tls.fingerprint!.replace(/:/g, "").toLowerCase() }).powerStatus(),
    "on",
  );

  await new Promise((r) => setTimeout(r, 300));
  const requestsBefore = tls.log().split("GET").length;
  const wrong = "00".repeat(32);
  await assert.rejects(client(tls, { fingerprint: wrong }).power("off"), (e: unknown) => {
    assert.ok(e instanceof BmcError);
    assert.equal(e.code, "BMC_CERTIFICATE");
    assert.match(e.message, /not the pinned one/);
    return true;
  });
  await assert.rejects(
    client(tls).powerStatus(),
    (e: unknown) => e instanceof BmcError && e.code === "BMC_CERTIFICATE",
  );
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(
    tls.log().split("GET").length,
    requestsBefore,
    "a request reached a server whose certificate was refused",
  );
});

/** A server on a free loopback port, closed after the test. */
async function listen(t: { after(fn: () => unknown): void }, server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

function plainClient(port: number, attemptMs = 2000) {
  return new RedfishClient(
    { protocol: "redfish", address: "127.0.0.1", port, scheme: "http", username: "root", password: "wrong-pw" },
    { attemptMs, attempts: 2 },
  );
}

test("a BMC that refuses the credentials (401) is BMC_CREDENTIALS, tried once", async (t) => {
  let requests = 0;
  const server = createHttpServer((req, res) => {
    requests++;
    assert.equal(req.headers.authorization, `Basic ${Buffer.from("root:wrong-pw").toString("base64")}`);
    res.writeHead(401, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: "Access denied" } }));
  });
  const port = await listen(t, server);
  await assert.rejects(plainClient(port).powerStatus(), (e: unknown) => {
    assert.ok(e instanceof BmcError);
    assert.equal(e.code, "BMC_CREDENTIALS");
    assert.ok(!e.message.includes("wrong-pw"), "the password is in the error");
    return true;
  });
  assert.equal(requests, 1);
});

test("nothing listening is BMC_UNREACHABLE at once", async (t) => {
  const server = createTcpServer();
  const port = await listen(t, server);
  await new Promise<void>((r) => server.close(() => r()));
  const started = Date.now();
  await assert.rejects(
    plainClient(port).powerStatus(),
    (e: unknown) => e instanceof BmcError && e.code === "BMC_UNREACHABLE",
  );
  assert.ok(Date.now() - started < 2000);
});

test("a BMC that hangs mid-answer is BMC_TIMEOUT within attempts × attemptMs", async (t) => {
  const sockets = new Set<import("node:net").Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    // Headers and the start of a body, then nothing: a BMC web server stuck behind its own lock.
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n{"Systems":');
  });
  const port = await listen(t, server);
  t.after(() => {
    for (const s of sockets) s.destroy();
  });
  const started = Date.now();
  await assert.rejects(
    plainClient(port, 1500).powerStatus(),
    (e: unknown) => e instanceof BmcError && e.code === "BMC_TIMEOUT",
  );
  const took = Date.now() - started;
  assert.ok(took >= 2 * 1500 - 100 && took < 2 * 1500 + 2000, `took ${took} ms`);
});
