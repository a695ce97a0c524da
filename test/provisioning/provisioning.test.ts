import assert from "node:assert/strict";
import { test } from "node:test";
import { Firmware } from "../../src/boot/firmware.js";
import { parseConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { silentLogger } from "../../src/log.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import type { NodeEvent } from "../../src/store/store.js";
import { httpStatusOf } from "../../src/api/http-status.js";
import type { NodeRecord } from "../../src/store/store.js";
import {
  CallbackRejectedError,
  ConflictError,
  TransitionRefusedError,
  ValidationError,
} from "../../src/provisioning/errors.js";
import {
  createProvisioning,
  type Lifecycle,
  type ProvisioningPart,
  type Sighting,
} from "../../src/provisioning/index.js";
import { parseNodeChanges } from "../../src/provisioning/node-input.js";
import { hashToken } from "../../src/provisioning/tokens.js";

const CONFIG = `
serverAddress: 10.0.100.10
provisioning: { timeout: 10m }
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: 10.0.100.50 }
`;

interface Fixture {
  store: SqliteStore;
  part: ProvisioningPart;
  clock: { now: Date };
  events: NodeEvent[];
  config: Config;
  /** What DHCP's `addressOf` answers (empty: it knows no machine's address). */
  addresses: Map<string, string>;
}

async function fixture(text = CONFIG): Promise<Fixture> {
  const store = openSqliteStore(":memory:");
  const clock = { now: new Date("2026-11-25T20:00:00.000Z") };
  const config = parseConfig(text);
  const addresses = new Map<string, string>();
  const part = createProvisioning({
    store,
    config,
    logger: silentLogger,
    now: () => clock.now,
    addressOf: (mac) => addresses.get(mac),
  });
  const events: NodeEvent[] = [];
  part.onEvent((e) => events.push(e));
  await part.inventory.applyConfig(config);
  return { store, part, clock, events, config, addresses };
}

/** A sighting, written at once (the batch flushed), and the node that holds its MAC afterwards. */
async function observe(f: Fixture, sighting: Sighting): Promise<NodeRecord> {
  const written = f.part.sightings.report(sighting);
  await f.part.sightings.flush();
  await written;
  return (await f.store.nodes.findByMac(sighting.mac))!;
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
  const [node] = await f.part.inventory.listNodes();
  assert.equal(node?.state, "ready");
  assert.equal(node?.source, "config");
  assert.deepEqual(f.part.lookupNode("52-54-00-12-34-56"), { ipAddress: "10.0.100.50", hostname: "control-plane-01" });
  const before = f.events.length;
  await f.part.inventory.applyConfig(f.config);
  assert.equal(f.events.length, before, "nothing changed, nothing recorded");
  assert.equal((await f.part.inventory.listNodes()).length, 1);
});

withFixture(
  "the config wins: a reload changes a declared node, and an undeclared one is kept for the API",
  async (f) => {
    const api = await f.part.inventory.createNode(
      parseNodeChanges({ mac: "52:54:00:00:00:99", hostname: "spare", profile: "worker" }, "create", f.config),
      "test",
    );
    const next = parseConfig(CONFIG.replace("control-plane-01", "spare"));
    await f.part.inventory.applyConfig(next);
    assert.equal((await f.part.inventory.getNode("52:54:00:12:34:56")).hostname, "spare");
    assert.equal(
      (await f.part.inventory.getNode(api.id)).hostname,
      undefined,
      "the hostname moved to the declared node",
    );
    await f.part.inventory.applyConfig(parseConfig("serverAddress: 10.0.100.10"));
    const kept = await f.part.inventory.getNode("52:54:00:12:34:56");
    assert.equal(kept.source, "api");
    assert.deepEqual(f.events.at(-1)?.kind, "undeclared");
  },
);

withFixture("an unknown MAC becomes discovered once; a profile makes it ready", async (f) => {
  const seen = await observe(f, {
    mac: "52:54:00:aa:bb:cc",
    firmware: "efi-x64",
    uuid: "4C4C4544-0000-1000-8000-0000000000AA",
    via: "dhcp",
  });
  assert.equal(seen.state, "discovered");
  assert.equal(seen.uuid, "4c4c4544-0000-1000-8000-0000000000aa");
  await observe(f, { mac: "52:54:00:aa:bb:cc", firmware: "efi-x64", via: "dhcp" });
  assert.equal((await f.part.inventory.listNodes({ state: "discovered" })).length, 1);
  assert.equal(f.events.filter((e) => e.kind === "discovered").length, 1);
  const ready = await f.part.inventory.updateNode(
    "52:54:00:aa:bb:cc",
    parseNodeChanges({ profile: "worker" }, "update", f.config),
    "test",
  );
  assert.equal(ready.state, "ready");
  assert.deepEqual(f.events.at(-1), {
    ...f.events.at(-1)!,
    kind: "transition",
    fromState: "discovered",
    toState: "ready",
  });
});

withFixture("registering a discovered MAC adopts that node and keeps its history", async (f) => {
  const seen = await observe(f, { mac: "52:54:00:aa:bb:01", firmware: "bios", via: "dhcp" });
  const adopted = await f.part.inventory.createNode(
    parseNodeChanges(
      { macs: ["52:54:00:aa:bb:02", "52:54:00:aa:bb:01"], profile: "worker", hostname: "w-1" },
      "create",
      f.config,
    ),
    "test",
  );
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
  await assert.rejects(
    f.part.inventory.createNode(parseNodeChanges({ mac: "52:54:00:aa:bb:01" }, "create", f.config), "test"),
    ConflictError,
    "a registered node is not adopted twice",
  );
});

withFixture("a profile removed from the config cannot be provisioned", async (f) => {
  await f.part.inventory.createNode(
    parseNodeChanges({ mac: "52:54:00:aa:bb:03", profile: "worker" }, "create", f.config),
    "test",
  );
  await f.part.inventory.applyConfig(parseConfig(`${CONFIG}profiles: { control-plane: {} }\n`));
  await assert.rejects(
    f.part.lifecycle.provision("52:54:00:aa:bb:03", "test"),
    /profile worker is no longer in the config/,
  );
});

withFixture(
  "a new MAC presenting a known node's UUID is a conflict for an admin, never added by the network",
  async (f) => {
    const node = await f.part.inventory.createNode(
      parseNodeChanges(
        {
          mac: "52:54:00:00:00:01",
          uuid: "4c4c4544-0000-1000-8000-000000000001",
          profile: "worker",
          hostname: "w-1",
          ipAddress: "10.0.100.61",
        },
        "create",
        f.config,
      ),
      "test",
    );
    const seen = await observe(f, {
      mac: "52:54:00:00:00:02",
      uuid: "4c4c4544-0000-1000-8000-000000000001",
      via: "ipxe",
    });
    assert.notEqual(seen.id, node.id, "the stranger is not the node");
    assert.equal(seen.state, "discovered");
    assert.equal(seen.uuid, undefined, "nor does it take the node's UUID");
    assert.deepEqual((await f.part.inventory.getNode(node.id)).macs, ["52:54:00:00:00:01"]);
    assert.equal(f.part.lookupNode("52:54:00:00:00:02"), undefined, "no reservation of the node");
    const conflicts = f.events.filter((e) => e.kind === "identity-conflict");
    assert.equal(conflicts.length, 1);
    assert.equal(conflicts[0]!.nodeId, node.id);
    assert.equal(conflicts[0]!.details.mac, "52:54:00:00:00:02");
    advance(f, 2 * 60_000);
    await observe(f, { mac: "52:54:00:00:00:02", uuid: "4c4c4544-0000-1000-8000-000000000001", via: "dhcp" });
    assert.equal(f.events.filter((e) => e.kind === "identity-conflict").length, 1, "once per MAC, not per packet");

    // The admin approves: the MAC joins the node, its placeholder goes.
    const adopted = await f.part.inventory.adoptMac(node.id, "52-54-00-00-00-02", "test");
    assert.deepEqual(adopted.macs, ["52:54:00:00:00:01", "52:54:00:00:00:02"]);
    assert.deepEqual(f.part.lookupNode("52:54:00:00:00:02"), { ipAddress: "10.0.100.61", hostname: "w-1" });
    assert.equal(await f.store.nodes.get(seen.id), undefined);
    await assert.rejects(
      f.part.inventory.adoptMac(node.id, "52:54:00:12:34:56", "test"),
      ConflictError,
      "a registered node's MAC is not taken",
    );

    // A known node's serial is a conflict too; a vendor's placeholder serial is not.
    await f.store.nodes.replace({ ...(await f.store.nodes.get(node.id))!, serial: "CZ1234ABCD" });
    await observe(f, { mac: "52:54:00:00:00:04", serial: "CZ1234ABCD", via: "ipxe" });
    await observe(f, { mac: "52:54:00:00:00:05", serial: "To be filled by O.E.M.", via: "ipxe" });
    assert.deepEqual(
      f.events
        .filter((e) => e.kind === "identity-conflict")
        .map((e) => [e.details.mac, e.details.serial ?? e.details.uuid]),
      [
        ["52:54:00:00:00:02", "4c4c4544-0000-1000-8000-000000000001"],
        ["52:54:00:00:00:04", "CZ1234ABCD"],
      ],
    );
    assert.deepEqual((await f.part.inventory.getNode(node.id)).macs, ["52:54:00:00:00:01", "52:54:00:00:00:02"]);

    // A placeholder UUID shared by a whole batch of boards merges nothing and is no conflict.
    const other = await observe(f, {
      mac: "52:54:00:00:00:03",
      uuid: "03000200-0400-0500-0006-000700080009",
      via: "ipxe",
    });
    assert.notEqual(other.id, node.id);
  },
);

withFixture("provision → install token → callback → provisioned; the token works once", async (f) => {
  const node = await f.part.lifecycle.provision("control-plane-01", "test");
  assert.equal(node.state, "provisioning");
  const issued = await f.part.lifecycle.installToken(node.id);
  assert.ok(issued);
  assert.match(issued.token, /^[A-Za-z0-9_-]{43}$/);
  const done = await f.part.lifecycle.callback({ token: issued.token, mac: "52:54:00:12:34:56", outcome: "succeeded" });
  assert.equal(done.state, "provisioned");
  assert.equal(done.provisioningId, undefined);
  await assert.rejects(
    f.part.lifecycle.callback({ token: issued.token, mac: "52:54:00:12:34:56", outcome: "succeeded" }),
    (e: unknown) => e instanceof CallbackRejectedError && httpStatusOf(e) === 403 && e.reason === "used",
  );
  await assert.rejects(f.part.lifecycle.provision(node.id, "test"), TransitionRefusedError, "no accidental reinstall");
  assert.equal((await f.part.lifecycle.provision(node.id, "test", { reprovision: true })).state, "provisioning");
});

withFixture(
  "callbacks without a token, with a wrong one, another node's, or an old attempt's are refused",
  async (f) => {
    const other = await f.part.inventory.createNode(
      parseNodeChanges({ mac: "52:54:00:00:00:07", profile: "worker" }, "create", f.config),
      "test",
    );
    await f.part.lifecycle.provision(other.id, "test");
    await f.part.lifecycle.provision("52:54:00:12:34:56", "test");
    const issued = (await f.part.lifecycle.installToken((await f.part.inventory.getNode("52:54:00:12:34:56")).id))!;
    const reason = async (request: Parameters<Lifecycle["callback"]>[0]) =>
      f.part.lifecycle.callback(request).then(
        () => "accepted",
        (e: unknown) => (e instanceof CallbackRejectedError ? `${httpStatusOf(e)} ${e.reason}` : String(e)),
      );
    assert.equal(await reason({ token: undefined, outcome: "succeeded" }), "401 missing");
    assert.equal(await reason({ token: "not-a-token", outcome: "succeeded" }), "403 unknown");
    assert.equal(
      await reason({ token: issued.token, mac: "52:54:00:00:00:07", outcome: "succeeded" }),
      "403 other-node",
    );
    // A wrong MAC does not spend the token: a stranger cannot burn the machine's one way to report back.
    assert.equal((await f.store.callbackTokens.find(hashToken(issued.token)))?.usedAt, undefined);
    const second = (await f.part.lifecycle.installToken((await f.part.inventory.getNode("52:54:00:12:34:56")).id))!;
    assert.equal(second.token, issued.token, "a refetch in the same attempt gets the same token");
    assert.equal(second.first, false);
    await f.part.lifecycle.provision("52:54:00:12:34:56", "test", { reprovision: true });
    assert.equal(
      await reason({ token: second.token, outcome: "succeeded" }),
      "403 unknown",
      "a new attempt voids older tokens",
    );
    const third = (await f.part.lifecycle.installToken((await f.part.inventory.getNode("52:54:00:12:34:56")).id))!;
    assert.notEqual(third.token, issued.token, "a new attempt has a new token");
    assert.ok(f.events.some((e) => e.kind === "callback-rejected"));
  },
);

withFixture("no callback within the timeout: failed, with an event; the token has expired too", async (f) => {
  const node = await f.part.lifecycle.provision("52:54:00:12:34:56", "test");
  advance(f, 5 * 60_000);
  const issued = (await f.part.lifecycle.installToken(node.id))!;
  advance(f, 9 * 60_000);
  assert.deepEqual(await f.part.lifecycle.sweepTimeouts(), [], "the install boot restarted the clock");
  const refetched = (await f.part.lifecycle.installToken(node.id))!;
  assert.equal(
    refetched.node.provisionDeadline,
    issued.node.provisionDeadline,
    "a refetch does not push the deadline back",
  );
  advance(f, 2 * 60_000);
  const [failed] = await f.part.lifecycle.sweepTimeouts();
  assert.equal(failed?.state, "failed");
  assert.equal(f.events.at(-1)?.details.action, "timeout");
  await assert.rejects(f.part.lifecycle.callback({ token: issued.token, outcome: "succeeded" }), CallbackRejectedError);
  assert.equal(
    (await f.part.lifecycle.provision(node.id, "test")).state,
    "provisioning",
    "failed nodes can be retried",
  );
});

withFixture("a reported failure makes the node failed", async (f) => {
  const node = await f.part.lifecycle.provision("52:54:00:12:34:56", "test");
  const issued = (await f.part.lifecycle.installToken(node.id))!;
  const failed = await f.part.lifecycle.callback({ token: issued.token, outcome: "failed", message: "disk not found" });
  assert.equal(failed.state, "failed");
  assert.equal(f.events.at(-1)?.details.message, "disk not found");
});

withFixture("config-owned fields and config nodes cannot be changed or removed through the API", async (f) => {
  await assert.rejects(
    f.part.inventory.updateNode("control-plane-01", { hostname: "x" }, "test"),
    (e: unknown) => e instanceof ConflictError && e.field === "hostname",
  );
  await assert.rejects(f.part.inventory.removeNode("control-plane-01", "test"), ConflictError);
  const labelled = await f.part.inventory.updateNode("control-plane-01", { labels: { rack: "a1" } }, "test");
  assert.deepEqual(labelled.labels, { rack: "a1" });
});

withFixture("uniqueness clashes are conflicts that name the field", async (f) => {
  await assert.rejects(
    f.part.inventory.createNode(
      parseNodeChanges({ mac: "52:54:00:00:00:01", ipAddress: "10.0.100.50" }, "create", f.config),
      "test",
    ),
    (e: unknown) => e instanceof ConflictError && e.field === "ipAddress",
  );
  await assert.rejects(
    f.part.inventory.createNode(parseNodeChanges({ mac: "52:54:00:12:34:56" }, "create", f.config), "test"),
    (e: unknown) => e instanceof ConflictError && e.field === "macs",
  );
});

withFixture("retired nodes are removed from installs and can come back", async (f) => {
  const node = await f.part.lifecycle.provision("52:54:00:12:34:56", "test");
  const issued = (await f.part.lifecycle.installToken(node.id))!;
  assert.equal((await f.part.lifecycle.retire(node.id, "test")).state, "retired");
  await assert.rejects(f.part.lifecycle.callback({ token: issued.token, outcome: "succeeded" }), CallbackRejectedError);
  assert.equal((await f.part.lifecycle.reactivate(node.id, "test")).state, "ready");
});

test("node input: every bad field is named at once", async () => {
  const config = parseConfig(CONFIG);
  assert.throws(
    () =>
      parseNodeChanges(
        {
          macs: ["nope"],
          profile: "db",
          hostname: "bad_name",
          ipAddress: "10.0.100.150",
          labels: { "": "x" },
          colour: "red",
        },
        "create",
        config,
      ),
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
  assert.deepEqual(parseNodeChanges({ mac: "52-54-00-AA-BB-CC", hostname: null }, "update", config), {
    macs: ["52:54:00:aa:bb:cc"],
    hostname: null,
  });
});

withFixture("discovered machines not seen for provisioning.discoveredTtl are removed, with an event", async (f) => {
  const stale = await observe(f, { mac: "52:54:00:ee:00:01", via: "dhcp" });
  advance(f, 6 * 24 * 3_600_000);
  const fresh = await observe(f, { mac: "52:54:00:ee:00:02", via: "dhcp" });
  assert.deepEqual(await f.part.sightings.expire(), [], "six days: nothing yet (default 7d)");
  advance(f, 2 * 24 * 3_600_000);
  const expired = await f.part.sightings.expire();
  assert.deepEqual(
    expired.map((n) => n.id),
    [stale.id],
  );
  assert.equal(await f.store.nodes.get(stale.id), undefined);
  assert.ok(await f.store.nodes.get(fresh.id));
  assert.equal(f.events.at(-1)?.kind, "expired");
  assert.ok(await f.part.inventory.getNode("control-plane-01"), "registered nodes never expire");
});

withFixture("a flood of new MACs is budgeted (drops counted) and written in one batch", async (f) => {
  const written = Array.from({ length: 300 }, (_, i) =>
    f.part.sightings.report({
      mac: `52:54:01:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
      via: "ipxe",
    }),
  );
  await f.part.sightings.flush();
  await Promise.all(written);
  const stats = f.part.sightingStats();
  // Budget: a burst of 200 (provisioning.sightingBurst) with a pinned clock, so the rest are dropped.
  assert.equal(stats.recorded, 200);
  assert.equal(stats.dropped, 100);
  assert.equal((await f.part.inventory.listNodes({ state: "discovered" })).length, 200);
});

withFixture(
  "boot chain: a UEFI machine whose attempt stalls before its script falls back to snponly.efi, on its timeline",
  async (f) => {
    const mac = "52:54:00:12:34:56";
    const machine = { mac, buildarch: "x86_64", platform: "efi" as const, uuid: "", serial: "" };
    const base = { baseUrl: "http://10.0.100.10", config: f.config, remote: "10.0.100.50" };
    const later = (ms: number) => {
      f.clock.now = new Date(f.clock.now.getTime() + ms);
    };
    assert.equal(f.part.bootChain(mac, f.config, Firmware.EfiX64, "DISCOVER").flavour, "ipxe.efi");
    // iPXE's own DHCP is not a firmware attempt, and a HEAD probe is no script fetched.
    assert.equal(f.part.bootChain(mac, f.config, Firmware.Ipxe, "DISCOVER").flavour, undefined);
    await f.part.resolver.resolve(machine, { ...base, probe: true });
    // Its REQUEST, however late, and a file that is no iPXE bootloader change nothing.
    later(5 * 60_000);
    assert.equal(f.part.bootChain(mac, f.config, Firmware.EfiX64, "REQUEST").flavour, "ipxe.efi");
    f.part.bootloaderFetched(mac, "undionly.kpxe", base.remote);
    later(5 * 60_000);
    assert.equal(f.part.bootChain(mac, f.config, Firmware.EfiX64, "DISCOVER").flavour, "snponly.efi");
    await new Promise((resolve) => setTimeout(resolve, 50)); // the event is written after the answer
    const fallback = f.events.find((e) => e.kind === "boot-fallback");
    assert.deepEqual(
      { from: fallback?.details.from, to: fallback?.details.to },
      { from: "ipxe.efi", to: "snponly.efi" },
      JSON.stringify(f.events.map((e) => e.kind)),
    );
    // A stranger whose address the timeline joined to this MAC (its `machine.ipxe?mac=`) downloads
    // snponly.efi: not from the machine's address, so the attempt goes on (its DISCOVER is no new one).
    f.addresses.set(mac, base.remote);
    f.part.bootloaderFetched(mac, "snponly.efi", "10.0.100.66");
    later(10_000);
    assert.equal(f.part.bootChain(mac, f.config, Firmware.EfiX64, "DISCOVER").flavour, "snponly.efi");
    // The machine fetched it, and power-cycled seconds later: its DISCOVER is the next attempt.
    f.part.bootloaderFetched(mac, "snponly.efi", base.remote);
    // Its iPXE hangs; meanwhile the stranger asks for its machine.ipxe: a script fetched, but not by
    // the machine, so this attempt has not worked (taken as the machine's, snponly.efi would be kept).
    await f.part.resolver.resolve(machine, { ...base, remote: "10.0.100.66" });
    later(10_000);
    assert.equal(f.part.bootChain(mac, f.config, Firmware.EfiX64, "DISCOVER").flavour, "http");
    // UEFI HTTP boot's ipxe.efi by URL (the per-machine one too), then its script: `http` is kept.
    later(2_000);
    f.part.bootloaderFetched(mac, "/boot/ipxe/machine/52-54-00-12-34-56/ipxe.efi", `::ffff:${base.remote}`);
    await f.part.resolver.resolve(machine, base);
    later(10_000);
    assert.equal(f.part.bootChain(mac, f.config, Firmware.EfiX64Http, "DISCOVER").flavour, "http");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(f.events.filter((e) => e.kind === "boot-fallback").length, 2);
  },
);
