import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { silentLogger } from "../log.js";
import { openSqliteStore, type SqliteStore } from "../store/sqlite-store.js";
import type { NodeEvent } from "../store/store.js";
import { CallbackRejectedError, ConflictError, TransitionRefusedError, ValidationError } from "./errors.js";
import { parseNodeChanges } from "./node-input.js";
import { Provisioning } from "./provisioning.js";

const CONFIG = `
serverAddress: 10.0.100.10
provisioning: { timeout: 10m }
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: 10.0.100.50 }
`;

interface Fixture {
  store: SqliteStore;
  provisioning: Provisioning;
  clock: { now: Date };
  events: NodeEvent[];
  config: Config;
}

async function fixture(text = CONFIG): Promise<Fixture> {
  const store = openSqliteStore(":memory:");
  const clock = { now: new Date("2026-11-25T20:00:00.000Z") };
  const config = parseConfig(text);
  const provisioning = new Provisioning({ store, config, logger: silentLogger, now: () => clock.now });
  const events: NodeEvent[] = [];
  provisioning.onEvent((e) => events.push(e));
  await provisioning.applyConfig(config);
  return { store, provisioning, clock, events, config };
}

const withFixture = (title: string, body: (f: Fixture) => Promise<void>) =>
  test(title, async () => {
    const f = await fixture();
    try {
      await body(f);
    } finally {
      await f.store.close();
    }
  });

const advance = (f: Fixture, ms: number) => (f.clock.now = new Date(f.clock.now.getTime() + ms));

withFixture("config nodes are loaded ready, with their reservation, and reloading is idempotent", async (f) => {
  const [node] = await f.provisioning.listNodes();
  assert.equal(node?.state, "ready");
  assert.equal(node?.source, "config");
  assert.deepEqual(f.provisioning.reservationFor("52-54-00-12-34-56"), { ipAddress: "10.0.100.50", hostname: "control-plane-01" });
  const before = f.events.length;
  await f.provisioning.applyConfig(f.config);
  assert.equal(f.events.length, before, "nothing changed, nothing recorded");
  assert.equal((await f.provisioning.listNodes()).length, 1);
});

withFixture("the config wins: a reload changes a declared node, and an undeclared one is kept for the API", async (f) => {
  const api = await f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:00:00:99", hostname: "spare", profile: "worker" }, "create", f.config), "test");
  const next = parseConfig(CONFIG.replace("control-plane-01", "spare"));
  await f.provisioning.applyConfig(next);
  assert.equal((await f.provisioning.getNode("52:54:00:12:34:56")).hostname, "spare");
  assert.equal((await f.provisioning.getNode(api.id)).hostname, undefined, "the hostname moved to the declared node");
  await f.provisioning.applyConfig(parseConfig("serverAddress: 10.0.100.10"));
  const kept = await f.provisioning.getNode("52:54:00:12:34:56");
  assert.equal(kept.source, "api");
  assert.deepEqual(f.events.at(-1)?.kind, "undeclared");
});

withFixture("an unknown MAC becomes discovered once; a profile makes it ready", async (f) => {
  const seen = await f.provisioning.observe({ mac: "52:54:00:aa:bb:cc", firmware: "efi-x64", uuid: "4C4C4544-0000-1000-8000-0000000000AA", via: "dhcp" });
  assert.equal(seen.state, "discovered");
  assert.equal(seen.uuid, "4c4c4544-0000-1000-8000-0000000000aa");
  await f.provisioning.observe({ mac: "52:54:00:aa:bb:cc", firmware: "efi-x64", via: "dhcp" });
  assert.equal((await f.provisioning.listNodes({ state: "discovered" })).length, 1);
  assert.equal(f.events.filter((e) => e.kind === "discovered").length, 1);
  const ready = await f.provisioning.updateNode("52:54:00:aa:bb:cc", parseNodeChanges({ profile: "worker" }, "update", f.config), "test");
  assert.equal(ready.state, "ready");
  assert.deepEqual(f.events.at(-1), { ...f.events.at(-1)!, kind: "transition", fromState: "discovered", toState: "ready" });
});

withFixture("registering a discovered MAC adopts that node and keeps its history", async (f) => {
  const seen = await f.provisioning.observe({ mac: "52:54:00:aa:bb:01", firmware: "bios", via: "dhcp" });
  const adopted = await f.provisioning.createNode(parseNodeChanges({ macs: ["52:54:00:aa:bb:02", "52:54:00:aa:bb:01"], profile: "worker", hostname: "w-1" }, "create", f.config), "test");
  assert.equal(adopted.id, seen.id);
  assert.equal(adopted.adopted, true);
  assert.equal(adopted.state, "ready");
  assert.equal(adopted.source, "api");
  assert.equal(adopted.firmware, "bios");
  assert.deepEqual(adopted.macs, ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]);
  assert.deepEqual(
    f.events.filter((e) => e.nodeId === seen.id).map((e) => e.kind),
    ["discovered", "registered", "transition"],
  );
  await assert.rejects(f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:aa:bb:01" }, "create", f.config), "test"), ConflictError, "a registered node is not adopted twice");
});

withFixture("a profile removed from the config cannot be provisioned", async (f) => {
  await f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:aa:bb:03", profile: "worker" }, "create", f.config), "test");
  await f.provisioning.applyConfig(parseConfig(CONFIG + "profiles: { control-plane: {} }\n"));
  await assert.rejects(f.provisioning.provision("52:54:00:aa:bb:03", "test"), /profile worker is no longer in the config/);
});

withFixture("a machine is recognised by its UUID when it boots from a new NIC", async (f) => {
  const node = await f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:00:00:01", uuid: "4c4c4544-0000-1000-8000-000000000001", profile: "worker" }, "create", f.config), "test");
  const seen = await f.provisioning.observe({ mac: "52:54:00:00:00:02", uuid: "4c4c4544-0000-1000-8000-000000000001", via: "ipxe" });
  assert.equal(seen.id, node.id);
  assert.deepEqual(seen.macs, ["52:54:00:00:00:01", "52:54:00:00:00:02"]);
  // A placeholder UUID shared by a whole batch of boards must not merge strangers.
  const other = await f.provisioning.observe({ mac: "52:54:00:00:00:03", uuid: "03000200-0400-0500-0006-000700080009", via: "ipxe" });
  assert.notEqual(other.id, node.id);
});

withFixture("provision → install token → callback → provisioned; the token works once", async (f) => {
  const node = await f.provisioning.provision("control-plane-01", "test");
  assert.equal(node.state, "provisioning");
  const issued = await f.provisioning.issueInstallToken(node.id);
  assert.ok(issued);
  assert.match(issued.token, /^[A-Za-z0-9_-]{43}$/);
  const done = await f.provisioning.callback({ token: issued.token, mac: "52:54:00:12:34:56", outcome: "succeeded" });
  assert.equal(done.state, "provisioned");
  assert.equal(done.provisioningId, undefined);
  await assert.rejects(
    f.provisioning.callback({ token: issued.token, mac: "52:54:00:12:34:56", outcome: "succeeded" }),
    (e: unknown) => e instanceof CallbackRejectedError && e.status === 403 && e.reason === "used",
  );
  await assert.rejects(f.provisioning.provision(node.id, "test"), TransitionRefusedError, "no accidental reinstall");
  assert.equal((await f.provisioning.provision(node.id, "test", { reprovision: true })).state, "provisioning");
});

withFixture("callbacks without a token, with a wrong one, another node's, or an old attempt's are refused", async (f) => {
  const other = await f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:00:00:07", profile: "worker" }, "create", f.config), "test");
  await f.provisioning.provision(other.id, "test");
  await f.provisioning.provision("52:54:00:12:34:56", "test");
  const issued = (await f.provisioning.issueInstallToken((await f.provisioning.getNode("52:54:00:12:34:56")).id))!;
  const reason = async (request: Parameters<Provisioning["callback"]>[0]) =>
    f.provisioning.callback(request).then(
      () => "accepted",
      (e: unknown) => (e instanceof CallbackRejectedError ? `${e.status} ${e.reason}` : String(e)),
    );
  assert.equal(await reason({ token: undefined, outcome: "succeeded" }), "401 missing");
  assert.equal(await reason({ token: "not-a-token", outcome: "succeeded" }), "403 unknown");
  assert.equal(await reason({ token: issued.token, mac: "52:54:00:00:00:07", outcome: "succeeded" }), "403 other-node");
  // The token was spent on the wrong MAC: a stolen token is good for one failed try at most.
  assert.equal(await reason({ token: issued.token, mac: "52:54:00:12:34:56", outcome: "succeeded" }), "403 used");
  const second = (await f.provisioning.issueInstallToken((await f.provisioning.getNode("52:54:00:12:34:56")).id))!;
  await f.provisioning.provision("52:54:00:12:34:56", "test", { reprovision: true });
  assert.equal(await reason({ token: second.token, outcome: "succeeded" }), "403 unknown", "a new attempt voids older tokens");
  assert.ok(f.events.some((e) => e.kind === "callback-rejected"));
});

withFixture("no callback within the timeout: failed, with an event; the token has expired too", async (f) => {
  const node = await f.provisioning.provision("52:54:00:12:34:56", "test");
  advance(f, 5 * 60_000);
  const issued = (await f.provisioning.issueInstallToken(node.id))!;
  advance(f, 9 * 60_000);
  assert.deepEqual(await f.provisioning.sweepTimeouts(), [], "the install boot restarted the clock");
  advance(f, 2 * 60_000);
  const [failed] = await f.provisioning.sweepTimeouts();
  assert.equal(failed?.state, "failed");
  assert.equal(f.events.at(-1)?.details.action, "timeout");
  await assert.rejects(f.provisioning.callback({ token: issued.token, outcome: "succeeded" }), CallbackRejectedError);
  assert.equal((await f.provisioning.provision(node.id, "test")).state, "provisioning", "failed nodes can be retried");
});

withFixture("a reported failure makes the node failed", async (f) => {
  const node = await f.provisioning.provision("52:54:00:12:34:56", "test");
  const issued = (await f.provisioning.issueInstallToken(node.id))!;
  const failed = await f.provisioning.callback({ token: issued.token, outcome: "failed", message: "disk not found" });
  assert.equal(failed.state, "failed");
  assert.equal(f.events.at(-1)?.details.message, "disk not found");
});

withFixture("config-owned fields and config nodes cannot be changed or removed through the API", async (f) => {
  await assert.rejects(f.provisioning.updateNode("control-plane-01", { hostname: "x" }, "test"), (e: unknown) => e instanceof ConflictError && e.field === "hostname");
  await assert.rejects(f.provisioning.removeNode("control-plane-01", "test"), ConflictError);
  const labelled = await f.provisioning.updateNode("control-plane-01", { labels: { rack: "a1" } }, "test");
  assert.deepEqual(labelled.labels, { rack: "a1" });
});

withFixture("uniqueness clashes are conflicts that name the field", async (f) => {
  await assert.rejects(
    f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:00:00:01", ipAddress: "10.0.100.50" }, "create", f.config), "test"),
    (e: unknown) => e instanceof ConflictError && e.field === "ipAddress",
  );
  await assert.rejects(
    f.provisioning.createNode(parseNodeChanges({ mac: "52:54:00:12:34:56" }, "create", f.config), "test"),
    (e: unknown) => e instanceof ConflictError && e.field === "macs",
  );
});

withFixture("retired nodes are removed from installs and can come back", async (f) => {
  const node = await f.provisioning.provision("52:54:00:12:34:56", "test");
  const issued = (await f.provisioning.issueInstallToken(node.id))!;
  assert.equal((await f.provisioning.retire(node.id, "test")).state, "retired");
  await assert.rejects(f.provisioning.callback({ token: issued.token, outcome: "succeeded" }), CallbackRejectedError);
  assert.equal((await f.provisioning.reactivate(node.id, "test")).state, "ready");
});

test("node input: every bad field is named at once", async () => {
  const config = parseConfig(CONFIG);
  assert.throws(
    () => parseNodeChanges({ macs: ["nope"], profile: "db", hostname: "bad_name", ipAddress: "10.0.100.150", labels: { "": "x" }, colour: "red" }, "create", config),
    (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.deepEqual(
        e.problems.map((p) => p.field),
        ["colour", "macs[0]", "profile", "hostname", "ipAddress", "labels."],
      );
      assert.match(e.problems.find((p) => p.field === "ipAddress")!.message, /dynamic pool/);
      return true;
    },
  );
  assert.throws(() => parseNodeChanges({}, "create", config), /macs: is required/);
  assert.throws(() => parseNodeChanges([], "update", config), /must be a JSON object/);
  assert.deepEqual(parseNodeChanges({ mac: "52-54-00-AA-BB-CC", hostname: null }, "update", config), { macs: ["52:54:00:aa:bb:cc"], hostname: null });
});
