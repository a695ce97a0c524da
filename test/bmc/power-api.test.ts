import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { createApiPlugin } from "../../src/api/plugin.js";
import { createMetricsPlugin } from "../../src/metrics/metrics.js";
import { parseConfig } from "../../src/config/load.js";
import { createHttpApp } from "../../src/http/app.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import type { NodeEvent } from "../../src/store/store.js";
import { startIpmiSim, type IpmiSim } from "../support/ipmi-sim.js";
import { findBinary, isCI } from "../support/netns.js";
import { mockupServerScript, type RedfishMockup, startRedfishMockup } from "../support/redfish-mockup.js";

/**
 * Power through the API, end to end in-process, against real BMCs: OpenIPMI's ipmi_sim and the DMTF
 * Redfish mockup. A node gets a BMC with its password, which no read, event or log line shows and
 * the database keeps only sealed; power and boot device go through; discovery reads a Redfish
 * machine's MACs; provisioning by power sets PXE, cycles, and after the callback sets the disk; a
 * bulk provisioning with a dead BMC and a wrong password among good ones fails those two alone,
 * in bounded time.
 */

const stateDir = mkdtempSync(join(tmpdir(), "power-api-"));
let store: SqliteStore;
let part: ProvisioningPart;
let app: FastifyInstance;
let admin: string;
let sim: IpmiSim;
let mockup: RedfishMockup;
let silent: Socket;
let logText = "";
let ready = false;

before(async () => {
  const missing = ["ipmi_sim", "ipmitool"].filter((n) => findBinary(n) === undefined);
  if (missing.length > 0 || mockupServerScript() === undefined) {
    if (isCI) throw new Error(`missing ${missing.join(", ") || "the Redfish mockup (CENTRA_PXE_VENDOR_DIR)"}`);
    return;
  }
  [sim, mockup] = await Promise.all([startIpmiSim(), startRedfishMockup()]);
  silent = createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  writeFileSync(join(stateDir, "bmc-password"), `${sim.password}\n`, { mode: 0o600 });
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 10.0.100.10
bmc: { timeout: 3s, attempts: 1, pollInterval: 0, concurrency: 4 }
nodes:
  "52:54:00:b0:00:99":
    profile: worker
    hostname: from-config
    bmc: { type: ipmi, address: ${sim.address}, username: ${sim.username}, passwordFile: ${join(stateDir, "bmc-password")}, cipherSuite: 3 }
`);
  // Everything the server logs, at the most verbose level, to look for the password in.
  const logger = pino(
    { level: "trace" },
    new Writable({
      write(chunk, _encoding, done) {
        logText += chunk.toString();
        done();
      },
    }),
  );
  part = createProvisioning({ config, store, logger, addressOf: () => "127.0.0.1" });
  await part.service.start();
  const api = createApiPlugin({
    inventory: part.inventory,
    lifecycle: part.lifecycle,
    power: part.power,
    onEvent: part.onEvent,
    store,
    logger,
  });
  const metrics = createMetricsPlugin({ store, health: () => ({}) });
  app = await createHttpApp({
    config,
    logger,
    resolver: part.resolver,
    health: () => ({}),
    extraPlugins: [api, metrics],
  });
  admin = (await createApiToken(store, "ops")).token;
  ready = true;
});

after(async () => {
  await app?.close();
  await part?.service.stop();
  await store?.close();
  silent?.close();
  await Promise.all([sim?.stop(), mockup?.stop()]);
  rmSync(stateDir, { recursive: true, force: true });
});

async function call(method: "GET" | "POST" | "PUT" | "PATCH", url: string, payload?: unknown) {
  const res = await app.inject({
    method,
    url: `/api/v1${url}`,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(payload !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown>, text: res.body };
}

const ipmiBmc = (password: string, port = 623, address = sim.address) => ({
  type: "ipmi",
  address,
  port,
  username: sim.username,
  password,
  cipherSuite: 3,
});

let ipmiNode = "";
let redfishNode = "";

test("a node's BMC password is sealed in the store and never read back", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const created = await call("POST", "/nodes", {
    macs: ["52:54:00:b0:00:01"],
    profile: "worker",
    labels: { rack: "a1" },
    bmc: ipmiBmc(sim.password),
  });
  assert.equal(created.status, 201, created.text);
  ipmiNode = created.body.id as string;
  assert.deepEqual(created.body.bmc, {
    type: "ipmi",
    address: sim.address,
    port: 623,
    username: "admin",
    cipherSuite: 3,
    password: "stored",
  });
  const reads = [
    (await call("GET", `/nodes/${ipmiNode}`)).text,
    (await call("GET", "/nodes")).text,
    (await call("GET", `/nodes/${ipmiNode}/events`)).text,
  ];
  for (const text of reads) {
    assert.ok(!text.includes(sim.password), `the password is in a read: ${text.slice(0, 300)}`);
    assert.ok(!text.includes("sealedPassword"), "the sealed password is in a read");
  }
  assert.ok(
    !readFileSync(join(stateDir, "centra-pxe.db")).includes(sim.password),
    "the password is in the database in the clear",
  );
});

test("an API token cannot make the server read one of its files as a BMC password", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  // As a token holder would try to exfiltrate the first line of /etc/shadow to a BMC address of theirs.
  const refused = await call("POST", "/nodes", {
    macs: ["52:54:00:b0:00:66"],
    bmc: { type: "redfish", scheme: "http", address: "127.0.0.1", port: 9, username: "x", passwordFile: "/etc/shadow" },
  });
  assert.equal(refused.status, 400, refused.text);
  assert.match(refused.text, /bmc\.passwordFile/);
  const patched = await call("PATCH", `/nodes/${ipmiNode}`, {
    bmc: { ...ipmiBmc(sim.password), passwordFile: "/etc/shadow" },
  });
  assert.equal(patched.status, 400, patched.text);
});

test("power on and status, boot device with its read-back, through the API", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const on = await call("POST", `/nodes/${ipmiNode}/power`, { action: "on" });
  assert.equal(on.status, 200, on.text);
  assert.equal(sim.power(), "1");
  const status = await call("GET", `/nodes/${ipmiNode}/power`);
  assert.equal(status.body.state, "on");
  assert.equal(((await call("GET", `/nodes/${ipmiNode}`)).body.power as { state: string }).state, "on");
  const boot = await call("PUT", `/nodes/${ipmiNode}/bootdev`, { device: "pxe", efi: true });
  assert.equal(boot.status, 200, boot.text);
  assert.match(String(boot.body.mismatch), /UEFI/);
  const bad = await call("POST", `/nodes/${ipmiNode}/power`, { action: "explode" });
  assert.equal(bad.status, 400);
});

test("nodes add with a Redfish BMC and no MAC reads MACs, UUID and serial from the BMC", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const created = await call("POST", "/nodes", {
    bmc: {
      type: "redfish",
      scheme: "http",
      address: mockup.address,
      port: mockup.port,
      username: "root",
      password: "calvin",
    },
  });
  assert.equal(created.status, 201, created.text);
  assert.deepEqual(created.body.macs, ["12:44:6a:3b:04:11", "aa:bb:cc:dd:ee:00"]);
  assert.equal(created.body.uuid, "38947555-7742-3448-3784-823347823834");
  assert.equal(created.body.serial, "437XR1138R2");
  assert.equal((created.body.bmc as { password: string }).password, "stored");
  redfishNode = created.body.id as string;
});

test("a UEFI HTTP boot machine behind Redfish is sent to UefiHttp where the BMC offers it, else to PXE", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const node = await store.nodes.get(redfishNode);
  assert.ok(node);
  // As DHCP records a machine that asked with option 93 = 16 (x64 UEFI HTTP boot).
  await store.nodes.replace({ ...node, firmware: "efi-x64-http", profile: "worker", state: "ready" });
  const first = await call("POST", `/nodes/${redfishNode}/provision`, { power: true });
  assert.equal(first.status, 200, first.text);
  assert.deepEqual((first.body.steps as { device?: string }[])[0], { step: "boot-pxe", outcome: "ok", device: "pxe" });

  // The BMC now lists UefiHttp among its targets (a PATCH of the mockup's tree).
  const system = "/redfish/v1/Systems/437XR1138R2";
  const allowable = ["None", "Pxe", "Hdd", "UefiHttp"];
  const res = await fetch(`http://${mockup.address}:${mockup.port}${system}`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ Boot: { "BootSourceOverrideTarget@Redfish.AllowableValues": allowable } }),
  });
  assert.equal(res.status, 204);
  const second = await call("POST", `/nodes/${redfishNode}/reprovision`, { power: true });
  assert.equal(second.status, 200, second.text);
  const step = (second.body.steps as { device?: string; mismatch?: string }[])[0];
  assert.equal(step?.device, "http");
  assert.equal(step?.mismatch, undefined);
});

test("provision --power: PXE once, cycle, and after the callback the disk; each step an event", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const started = await call("POST", `/nodes/${ipmiNode}/provision`, { power: true });
  assert.equal(started.status, 200, started.text);
  assert.deepEqual(
    (started.body.steps as { step: string; outcome: string }[]).map((s) => `${s.step}:${s.outcome}`),
    ["boot-pxe:ok", "provision:ok", "power-cycle:ok"],
  );
  assert.equal((started.body.node as { state: string }).state, "provisioning");
  const calls = sim.calls();
  assert.ok(
    calls.lastIndexOf("0x20 set boot pxe") < calls.lastIndexOf("0x20 set reset 1") ||
      calls.includes("0x20 set power 1"),
    calls.join("\n"),
  );

  // The installer calls back with its token.
  const issued = await part.lifecycle.installToken(ipmiNode);
  assert.ok(issued);
  const done = await call("POST", "/nodes/callback", { token: issued.token, mac: "52:54:00:b0:00:01" });
  assert.equal(done.status, 200, done.text);
  const deadline = Date.now() + 10_000;
  let steps: string[] = [];
  while (Date.now() < deadline) {
    const { body } = await call("GET", `/nodes/${ipmiNode}/events?kind=power-provision`);
    steps = (body.events as NodeEvent[]).map((e) => `${e.details.step}:${e.details.outcome}`);
    if (steps.includes("boot-disk:ok")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(steps.slice(-2), ["await-callback:ok", "boot-disk:ok"]);
  // The last boot device set (the poller's reads may come after it, in any order).
  const bootSets = sim.calls().filter((c) => c.startsWith("0x20 set boot"));
  assert.equal(bootSets.at(-1), "0x20 set boot default", "ipmi_sim's chassis control calls the disk 'default'");
});

test("bulk by label: a dead BMC and a wrong password fail alone, in bounded time, the good node is cycled", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const add = async (mac: string, bmc: Record<string, unknown>) => {
    const r = await call("POST", "/nodes", { macs: [mac], profile: "worker", labels: { rack: "b2" }, bmc });
    assert.equal(r.status, 201, r.text);
    return r.body.id as string;
  };
  const good = await add("52:54:00:b0:00:11", ipmiBmc(sim.password));
  const dead = await add("52:54:00:b0:00:12", ipmiBmc("whatever", silent.address().port, "127.0.0.1"));
  const wrong = await add("52:54:00:b0:00:13", ipmiBmc("not-the-password"));
  const cyclesBefore = sim.calls().filter((c) => c.startsWith("0x20 set")).length;
  const startedAt = Date.now();
  const bulk = await call("POST", "/nodes/provision?label=rack=b2", { power: true });
  const took = Date.now() - startedAt;
  assert.equal(bulk.status, 200, bulk.text);
  const byNode = new Map(
    (bulk.body.results as { node: string; ok: boolean; error?: string }[]).map((r) => [r.node, r]),
  );
  assert.equal(byNode.get(good)?.ok, true);
  assert.equal(byNode.get(dead)?.error, "BMC_UNREACHABLE");
  assert.equal(byNode.get(wrong)?.error, "BMC_CREDENTIALS");
  // bmc.timeout 3 s × 1 attempt, in parallel: never the sum of the dead BMC's waits.
  assert.ok(took < 10_000, `took ${took} ms`);
  assert.ok(sim.calls().filter((c) => c.startsWith("0x20 set")).length > cyclesBefore);
  // A node whose BMC failed before the cycle is left as it was, not in an attempt nothing boots into.
  assert.equal((await call("GET", `/nodes/${dead}`)).body.state, "ready");
  assert.equal((await call("GET", `/nodes/${good}`)).body.state, "provisioning");
  const events = (await call("GET", `/nodes/${dead}/events?kind=power-provision`)).body.events as NodeEvent[];
  assert.equal(events.at(-1)?.details.error, "BMC_UNREACHABLE");
});

test("a config node's BMC reads its password from the file on the server, and shows only that it is a file", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const node = await call("GET", "/nodes/from-config");
  assert.equal(node.status, 200, node.text);
  assert.equal((node.body.bmc as { password: string }).password, "file");
  assert.ok(!node.text.includes("bmc-password"), "the password file's path is in a read");
  const status = await call("GET", "/nodes/from-config/power");
  assert.equal(status.status, 200, status.text);
  assert.match(String(status.body.state), /^(on|off)$/);
});

test("the poller reads every BMC's power, a dead one as unknown with its code; /metrics shows no password", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const started = Date.now();
  await part.power.pollOnce();
  assert.ok(Date.now() - started < 10_000, "a dead BMC held the poll round up");
  const nodes = (await call("GET", "/nodes")).body.nodes as { id: string; power?: { state: string; error?: string } }[];
  assert.equal(nodes.find((n) => n.id === ipmiNode)?.power?.state, "on");
  const dead = nodes.find((n) => n.power?.error === "BMC_UNREACHABLE");
  assert.equal(dead?.power?.state, "unknown");
  const metrics = await app.inject({ method: "GET", url: "/metrics" });
  assert.equal(metrics.statusCode, 200);
  assert.ok(!metrics.body.includes(sim.password));
});

test("the password is in no log line, at trace level", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  assert.ok(logText.length > 0, "nothing was logged: the test proves nothing");
  assert.ok(!logText.includes(sim.password));
  assert.ok(!logText.includes("calvin"));
});

test("the OpenAPI document describes the power routes", async (t) => {
  if (!ready) return t.skip("no ipmi_sim or mockup");
  const doc = (await call("GET", "/openapi.json")).body as { paths: Record<string, unknown> };
  for (const path of ["/nodes/{ref}/power", "/nodes/{ref}/bootdev", "/nodes/provision"])
    assert.ok(path in doc.paths, path);
});
