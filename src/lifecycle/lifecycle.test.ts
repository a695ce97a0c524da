import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BOOT_PLAN,
  decideTransition,
  LIFECYCLE_ACTIONS,
  type LifecycleAction,
  NODE_STATES,
  type NodeState,
} from "./lifecycle.js";

/**
 * Every (state, action) pair for a node with a profile: the target state, or "-" for a refusal.
 * Columns follow LIFECYCLE_ACTIONS.
 */
const WITH_PROFILE: Record<NodeState | "none", string> = {
  // columns:    discover     assign-prof  clear-prof   provision     reprovision   cb-ok        cb-failed  timeout  retire   reactivate
  none: "discovered   -            -            -             -             -            -          -        -        -",
  discovered:
    "discovered   ready        discovered   -             -             -            -          -        retired  -",
  ready:
    "ready        ready        discovered   provisioning  provisioning  -            -          -        retired  -",
  provisioning:
    "provisioning provisioning -            -             provisioning  provisioned  failed     failed   retired  -",
  provisioned:
    "provisioned  provisioned  provisioned  -             provisioning  -            -          -        retired  -",
  failed:
    "failed       failed       failed       provisioning  provisioning  -            -          -        retired  -",
  retired:
    "retired      retired      retired      -             -             -            -          -        -        ready",
};

function expectations(
  table: Record<NodeState | "none", string>,
): { from: NodeState | undefined; action: LifecycleAction; to: string }[] {
  const rows: { from: NodeState | undefined; action: LifecycleAction; to: string }[] = [];
  for (const [state, line] of Object.entries(table)) {
    const cells = line.trim().split(/\s+/);
    assert.equal(cells.length, LIFECYCLE_ACTIONS.length, `row ${state} has a cell per action`);
    for (const [i, to] of cells.entries()) {
      rows.push({ from: state === "none" ? undefined : (state as NodeState), action: LIFECYCLE_ACTIONS[i]!, to });
    }
  }
  return rows;
}

test("the transition table covers every state", () => {
  assert.deepEqual(
    Object.keys(WITH_PROFILE)
      .filter((s) => s !== "none")
      .sort(),
    [...NODE_STATES].sort(),
  );
});

for (const { from, action, to } of expectations(WITH_PROFILE)) {
  test(`with a profile: ${from ?? "(unknown)"} --${action}--> ${to === "-" ? "refused" : to}`, () => {
    const decision = decideTransition(from, action, { hasProfile: true });
    if (to === "-") {
      assert.equal(decision.allowed, false);
      assert.ok(!decision.allowed && decision.reason.length > 10, "a refusal explains itself");
    } else {
      assert.deepEqual(decision, { allowed: true, to });
    }
  });
}

test("without a profile nothing can be provisioned, and reactivation returns to discovered", () => {
  for (const state of NODE_STATES) {
    assert.equal(decideTransition(state, "provision", { hasProfile: false }).allowed, false, state);
    assert.equal(decideTransition(state, "reprovision", { hasProfile: false }).allowed, false, state);
  }
  assert.deepEqual(decideTransition("retired", "reactivate", { hasProfile: false }), {
    allowed: true,
    to: "discovered",
  });
});

test("a provisioned node refuses a plain provision and says how to reinstall", () => {
  const decision = decideTransition("provisioned", "provision", { hasProfile: true });
  assert.ok(!decision.allowed && /reprovision/.test(decision.reason));
});

test("boot plan per state: install only while provisioning, local disk once provisioned", () => {
  assert.deepEqual(BOOT_PLAN, {
    discovered: "menu",
    ready: "image",
    provisioning: "install",
    provisioned: "localdisk",
    failed: "none",
    retired: "none",
  });
});
