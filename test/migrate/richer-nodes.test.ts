import assert from "node:assert/strict";
import { test } from "node:test";
import type { ImageCatalog } from "../../src/boot/image-catalog.js";
import type { MachineIdentity } from "../../src/boot/spec.js";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning } from "../../src/provisioning/index.js";
import { parseNodeChanges } from "../../src/provisioning/node-input.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";

/**
 * Richer nodes in the config (several MACs, a UUID, a serial, labels) and profile selectors for
 * machines nobody listed, through the real inventory over a real (in-memory SQLite) store.
 */

const RICH = `
serverAddress: 10.0.100.10
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: 10.0.100.50 }
  "52:54:00:aa:00:01":
    profile: worker
    hostname: worker-01
    macs: ["52-54-00-AA-00-02", "5254.00aa.0003"]
    uuid: 4C4C4544-0042-3510-8052-B4C04F384D32
    serial: CZ1234 5678
    labels: { rack: a1, role: compute }
selectors:
  - match: { labels: { rack: b7 } }
    profile: all-in-one
  - match: { arch: efi-x64 }
    profile: worker
`;

const problems = (text: string) => {
  try {
    parseConfig(text, "c.yaml");
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return "";
};

test("the seed's node form is unchanged; the richer keys are normalised", () => {
  const config = parseConfig(RICH, "c.yaml");
  assert.deepEqual(config.nodes["52:54:00:12:34:56"], {
    mac: "52:54:00:12:34:56",
    profile: "control-plane",
    hostname: "control-plane-01",
    ipAddress: "10.0.100.50",
  });
  const worker = config.nodes["52:54:00:aa:00:01"]!;
  assert.deepEqual(worker.macs, ["52:54:00:aa:00:02", "52:54:00:aa:00:03"]);
  assert.equal(worker.uuid, "4c4c4544-0042-3510-8052-b4c04f384d32");
  assert.deepEqual(worker.labels, { rack: "a1", role: "compute" });
});

test("bad richer nodes and selectors are reported at file:line:col", () => {
  // Field checks first (zod runs the cross-field checks once every field parses).
  const fields = problems(`nodes:
  "52:54:00:00:00:02": { profile: worker, uuid: "not-a-uuid" }
selectors:
  - { match: { arch: sparc }, profile: worker }
`);
  assert.match(fields, /c\.yaml:2:49 nodes\.52:54:00:00:00:02\.uuid: is not a UUID/);
  assert.match(fields, /c\.yaml:4:22 selectors\.0\.match\.arch: must be one of "bios", "efi-ia32", "efi-x64"/);

  const cross = problems(`nodes:
  "52:54:00:00:00:01": { profile: worker, macs: ["52:54:00:00:00:09"] }
  "52:54:00:00:00:02": { profile: worker, macs: ["52:54:00:00:00:09", "nonsense"] }
  "52:54:00:00:00:03": { profile: worker, uuid: "4c4c4544-0042-3510-8052-b4c04f384d32" }
  "52:54:00:00:00:04": { profile: worker, uuid: "4C4C4544-0042-3510-8052-B4C04F384D32" }
selectors:
  - { match: {}, profile: worker }
  - { match: { arch: bios }, profile: nope }
`);
  assert.match(cross, /c\.yaml:3:50 nodes\.52:54:00:00:00:02\.macs\.0: MAC 52:54:00:00:00:09 is listed twice/);
  assert.match(cross, /c\.yaml:3:71 nodes\.52:54:00:00:00:02\.macs\.1: "nonsense" is not a MAC address/);
  assert.match(cross, /c\.yaml:5:49 nodes\.52:54:00:00:00:04\.uuid: UUID 4c4c4544-0042-3510-8052-b4c04f384d32 is also/);
  assert.match(cross, /c\.yaml:7:14 selectors\.0\.match: matches every machine/);
  assert.match(cross, /c\.yaml:8:39 selectors\.1\.profile: unknown profile "nope"/);
});

test("config sync puts the extra MACs, UUID, serial and labels on the node, and takes a MAC from its discovered placeholder", async () => {
  const store = openSqliteStore(":memory:");
  try {
    const part = createProvisioning({ store, config: parseConfig("{}"), logger: silentLogger });
    // The second NIC was seen on the network before anyone declared it: a discovered placeholder holds it.
    part.sightings.report({ mac: "52:54:00:aa:00:03", via: "dhcp" });
    await part.sightings.flush();
    const placeholder = await store.nodes.findByMac("52:54:00:aa:00:03");
    assert.equal(placeholder?.source, "discovered");

    await part.inventory.applyConfig(parseConfig(RICH));
    const node = await store.nodes.findByMac("52:54:00:aa:00:02");
    assert.ok(node, "an extra MAC finds the node");
    assert.deepEqual(node.macs, ["52:54:00:aa:00:01", "52:54:00:aa:00:02", "52:54:00:aa:00:03"]);
    assert.equal(node.uuid, "4c4c4544-0042-3510-8052-b4c04f384d32");
    assert.equal(node.serial, "CZ1234 5678");
    assert.deepEqual(node.labels, { rack: "a1", role: "compute" });
    assert.equal(node.hostname, "worker-01");
    assert.equal(await store.nodes.get(placeholder!.id), undefined, "the placeholder went");

    // The seed-form node got nothing it did not declare.
    const seed = await store.nodes.findByMac("52:54:00:12:34:56");
    assert.deepEqual([seed?.macs, seed?.labels, seed?.uuid], [["52:54:00:12:34:56"], {}, undefined]);

    // A reload with other labels replaces them; one without the richer keys leaves them as they are.
    await part.inventory.applyConfig(parseConfig(RICH.replace("rack: a1", "rack: a2")));
    assert.equal((await store.nodes.get(node.id))?.labels.rack, "a2");
  } finally {
    await store.close();
  }
});

const images: ImageCatalog = {
  currentVersion: async () => "v1",
  hasVersion: async () => true,
  cmdline: async () => "",
};

const machine = (over: Partial<MachineIdentity>): MachineIdentity => ({
  mac: "52:54:00:77:00:01",
  buildarch: "x86_64",
  platform: "efi",
  uuid: "",
  serial: "",
  ...over,
});

test("a selector picks the image of a machine nobody listed (by arch, by its labels), and nothing more", async () => {
  const store = openSqliteStore(":memory:");
  try {
    const config = parseConfig(`${RICH}\nprovisioning: { installTokenToAnyAddress: true }\n`);
    const part = createProvisioning({ store, config, logger: silentLogger, images: () => images });
    await part.inventory.applyConfig(config);
    const context = { baseUrl: "http://10.0.100.10", config, remote: "10.0.100.150" };

    const efi = await part.resolver.resolve(machine({}), context);
    assert.equal(efi.kind, "image");
    assert.equal(efi.kind === "image" && efi.profile, "worker", "efi-x64 → worker");
    assert.equal(efi.kind === "image" && efi.hostname, undefined, "no hostname");
    assert.doesNotMatch(efi.kind === "image" ? efi.cmdline : "", /centra\.token|centra\.api/, "no callback, no token");
    const stranger = await store.nodes.findByMac("52:54:00:77:00:01");
    assert.equal(stranger?.state, "discovered", "still only discovered: a selector registers nobody");
    assert.equal(stranger?.ipAddress, undefined, "and reserves nothing");

    const bios = await part.resolver.resolve(
      machine({ mac: "52:54:00:77:00:02", platform: "pcbios", buildarch: "i386" }),
      context,
    );
    assert.equal(bios.kind, "menu", "no selector matches a BIOS machine: the menu");

    // An admin labels the discovered BIOS machine: the label selector (listed first) now picks its profile.
    const discovered = await store.nodes.findByMac("52:54:00:77:00:02");
    await part.inventory.updateNode(
      discovered!.id,
      parseNodeChanges({ labels: { rack: "b7" } }, "update", config),
      "test",
    );
    const labelled = await part.resolver.resolve(
      machine({ mac: "52:54:00:77:00:02", platform: "pcbios", buildarch: "i386" }),
      context,
    );
    assert.equal(labelled.kind === "image" && labelled.profile, "all-in-one");

    // A listed node keeps its own profile, whatever the selectors say.
    const listed = await part.resolver.resolve(machine({ mac: "52:54:00:12:34:56" }), context);
    assert.equal(listed.kind === "image" && listed.profile, "control-plane");
  } finally {
    await store.close();
  }
});
