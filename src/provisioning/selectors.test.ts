import assert from "node:assert/strict";
import { test } from "node:test";
import { type BootFacts, decideBoot } from "./boot-decision.js";
import { archOf, selectProfile } from "./selectors.js";

const SELECTORS = [
  { match: { labels: { rack: "a1" }, arch: "efi-x64" as const }, profile: "control-plane" },
  { match: { uuid: "4c4c4544-0042-3510-8052-b4c04f384d32" }, profile: "all-in-one" },
  { match: { arch: "efi-x64" as const }, profile: "worker" },
];
const facts = (over: Partial<Parameters<typeof selectProfile>[1]>) => ({
  arch: "efi-x64",
  uuid: "",
  serial: "",
  labels: {},
  ...over,
});

test("selectors: first match in file order; every condition must hold", () => {
  assert.equal(selectProfile(SELECTORS, facts({ labels: { rack: "a1", x: "y" } }))?.profile, "control-plane");
  assert.equal(selectProfile(SELECTORS, facts({ labels: { rack: "a2" } }))?.profile, "worker");
  assert.equal(
    selectProfile(SELECTORS, facts({ arch: "bios", uuid: "4C4C4544-0042-3510-8052-B4C04F384D32" }))?.profile,
    "all-in-one",
    "UUIDs compare without case",
  );
  assert.equal(selectProfile(SELECTORS, facts({ arch: "bios" })), undefined);
  assert.equal(selectProfile([{ match: {}, profile: "worker" }], facts({})), undefined, "never a catch-all");
});

test("archOf: iPXE's platform and buildarch in DHCP's firmware names", () => {
  assert.equal(archOf("pcbios", "i386"), "bios");
  assert.equal(archOf("efi", "x86_64"), "efi-x64");
  assert.equal(archOf("efi", "i386"), "efi-ia32");
  assert.equal(archOf("efi", "arm64"), "efi-arm64");
  assert.equal(archOf("efi", "riscv64"), undefined);
});

const base: BootFacts = {
  node: undefined,
  requester: "other",
  probe: false,
  imageAvailable: true,
  tokenToAnyAddress: true,
};

test("the decision: a selector's profile stands in for the menu only, and never brings a token", () => {
  const selected = { ...base, selectedProfile: "worker" };
  assert.deepEqual(decideBoot(selected), {
    plan: { boot: "selected", profile: "worker" },
    effects: { sighting: true, token: false },
  });
  const discovered = { ...selected, node: { id: "n-1", state: "discovered" as const, hasProfile: false } };
  assert.deepEqual(decideBoot(discovered).plan, { boot: "selected", profile: "worker" });
  // A registered node's own plan wins over any selector.
  for (const state of ["ready", "provisioning", "provisioned", "failed", "retired"] as const) {
    const plan = decideBoot({ ...selected, node: { id: "n-1", state, hasProfile: true } }).plan;
    assert.notEqual(plan.boot, "selected", state);
  }
  assert.deepEqual(decideBoot(base).plan, { boot: "base" }, "no selector: the menu, as before");
});
