import assert from "node:assert/strict";
import { test } from "node:test";
import { NODE_STATES, type NodeState } from "../lifecycle/lifecycle.js";
import { type BootFacts, decideBoot } from "./boot-decision.js";

const facts = (over: Partial<BootFacts> & { state?: NodeState; hasProfile?: boolean } = {}): BootFacts => {
  const { state, hasProfile, ...rest } = over;
  return {
    node: state === undefined ? undefined : { id: "n-1", state, hasProfile: hasProfile ?? true },
    requester: "machine",
    probe: false,
    imageAvailable: true,
    tokenToAnyAddress: false,
    ...rest,
  };
};

test("each state's plan for a GET from the machine itself", () => {
  const plans = Object.fromEntries(NODE_STATES.map((state) => [state, decideBoot(facts({ state })).plan]));
  assert.deepEqual(plans, {
    discovered: { boot: "base" },
    ready: { boot: "image" },
    provisioning: { boot: "install", token: true },
    provisioned: { boot: "localdisk" },
    failed: { boot: "none", why: "failed" },
    retired: { boot: "none", why: "retired" },
  });
  assert.deepEqual(decideBoot(facts()).plan, { boot: "base" }, "a MAC the inventory does not hold: the menu");
  assert.deepEqual(decideBoot(facts({ state: "ready", hasProfile: false })).plan, { boot: "base" });
});

test("the install token goes only to the machine's own address, or anywhere when the config says so", () => {
  const table: [Partial<BootFacts>, string][] = [
    [{ requester: "machine" }, "token"],
    [{ requester: "other" }, "not-the-machine-address"],
    [{ requester: "unknown" }, "machine-address-unknown"],
    [{ requester: "unknown", tokenToAnyAddress: true }, "token"],
    [{ requester: "other", tokenToAnyAddress: true }, "token"],
    [{ imageAvailable: false }, "image-unavailable"],
  ];
  for (const [over, expected] of table) {
    const { plan, effects } = decideBoot(facts({ state: "provisioning", ...over }));
    assert.equal(plan.boot, "install");
    const got =
      plan.boot === "install" && plan.token ? "token" : plan.boot === "install" && !plan.token ? plan.withheld : "?";
    assert.equal(got, expected, JSON.stringify(over));
    assert.equal(effects.token, expected === "token", JSON.stringify(over));
    assert.equal(effects.sighting, true);
    assert.equal(
      effects.withheld,
      expected === "token" || expected === "image-unavailable" ? undefined : expected,
      "a withheld token is told, a missing image is not",
    );
  }
});

test("HEAD is a probe: the same kind of answer, no sighting, no token, no notice", () => {
  for (const state of [undefined, ...NODE_STATES]) {
    for (const requester of ["machine", "other", "unknown"] as const) {
      const { plan, effects } = decideBoot(facts({ ...(state ? { state } : {}), requester, probe: true }));
      assert.deepEqual(effects, { sighting: false, token: false }, `${state} ${requester}`);
      assert.equal(plan.boot, decideBoot(facts({ ...(state ? { state } : {}), requester })).plan.boot);
    }
  }
});

test("every GET is one sighting, whatever the plan", () => {
  for (const state of [undefined, ...NODE_STATES])
    assert.equal(decideBoot(facts(state ? { state } : {})).effects.sighting, true);
});

test("the per-machine bootloader URL: the node's answer only where its token would go; anyone else as an unknown machine", () => {
  for (const state of [undefined, ...NODE_STATES]) {
    const node = state ? { state } : {};
    const own = decideBoot(facts({ ...node, probe: true, bootloader: true }));
    assert.deepEqual(own, decideBoot(facts({ ...node, probe: true })), `${state}: the machine as for its script`);
    for (const requester of ["other", "unknown"] as const) {
      const stranger = decideBoot(facts({ ...node, requester, probe: true, bootloader: true }));
      assert.deepEqual(stranger.plan, { boot: "base" }, `${state} ${requester}: as if nobody registered it`);
      assert.deepEqual(stranger.effects, { sighting: false, token: false });
      const trusted = decideBoot(facts({ ...node, requester, probe: true, bootloader: true, tokenToAnyAddress: true }));
      assert.deepEqual(trusted, own, `${state} ${requester}: installTokenToAnyAddress trusts any address`);
    }
  }
});
