/** The lifecycle states of PRODUCT.md §5 (the store keeps them; nothing here imports anything, so every layer may). */
export const NODE_STATES = ["discovered", "ready", "provisioning", "provisioned", "failed", "retired"] as const;
export type NodeState = (typeof NODE_STATES)[number];

/**
 * The provisioning lifecycle of PRODUCT.md §5 as plain data: which action moves a node from which
 * state to which, and what a node in each state is given when it PXE-boots. No I/O, so both are
 * table-tested (lifecycle.test.ts) and the orchestrator only asks.
 *
 *   (none) ─discover→ discovered ─assign profile→ ready ─provision→ provisioning ─callback→ provisioned
 *                                                  ↑          failed ←─timeout / reported failure─┘
 *   any ─retire→ retired ─reactivate→ ready | discovered
 */

export type LifecycleAction =
  /** DHCP or iPXE saw a MAC nobody registered. */
  | "discover"
  /** A profile was set on the node (API, CLI, config). */
  | "assign-profile"
  /** The profile was taken away. */
  | "clear-profile"
  /** Install the node on its next PXE boot. */
  | "provision"
  /** Install again: a provisioned node, a failed one, or a stuck attempt restarted. */
  | "reprovision"
  /** The installed system called back with its token. */
  | "callback-succeeded"
  /** The installer called back to say it failed. */
  | "callback-failed"
  /** No callback within `provisioning.timeout`. */
  | "timeout"
  | "retire"
  | "reactivate";

export const LIFECYCLE_ACTIONS: readonly LifecycleAction[] = [
  "discover",
  "assign-profile",
  "clear-profile",
  "provision",
  "reprovision",
  "callback-succeeded",
  "callback-failed",
  "timeout",
  "retire",
  "reactivate",
];

/** What the decision needs to know about the node besides its state. */
export interface TransitionFacts {
  hasProfile: boolean;
}

/** `to` may equal the current state: the action is allowed and changes nothing (no event). */
export type TransitionDecision = { allowed: true; to: NodeState } | { allowed: false; reason: string };

const allow = (to: NodeState): TransitionDecision => ({ allowed: true, to });
const refuse = (reason: string): TransitionDecision => ({ allowed: false, reason });

/**
 * Decide an action. `from` is undefined for a MAC not in the inventory. A refusal's reason is
 * written for the operator who asked, with what to do instead.
 */
export function decideTransition(
  from: NodeState | undefined,
  action: LifecycleAction,
  facts: TransitionFacts,
): TransitionDecision {
  if (from === undefined) {
    return action === "discover" ? allow("discovered") : refuse("the node is not in the inventory");
  }
  switch (action) {
    case "discover":
      return allow(from);
    case "assign-profile":
      return allow(from === "discovered" ? "ready" : from);
    case "clear-profile":
      if (from === "provisioning")
        return refuse("the node is being provisioned with its profile; retire it or wait for the callback first");
      return allow(from === "ready" ? "discovered" : from);
    case "provision":
      switch (from) {
        case "ready":
        case "failed":
          return facts.hasProfile ? allow("provisioning") : refuse("the node has no profile; set one first");
        case "discovered":
          return refuse("the node has no profile; set one first (it becomes ready)");
        case "provisioning":
          return refuse("the node is already provisioning; use reprovision to start a new attempt");
        case "provisioned":
          // The point of the lifecycle: an installed machine is never reinstalled by accident.
          return refuse("the node is already provisioned; use reprovision to install it again");
        case "retired":
          return refuse("the node is retired; reactivate it first");
      }
      break;
    case "reprovision":
      switch (from) {
        case "ready":
        case "failed":
        case "provisioning":
        case "provisioned":
          return facts.hasProfile ? allow("provisioning") : refuse("the node has no profile; set one first");
        case "discovered":
          return refuse("the node has no profile; set one first (it becomes ready)");
        case "retired":
          return refuse("the node is retired; reactivate it first");
      }
      break;
    case "callback-succeeded":
      return from === "provisioning" ? allow("provisioned") : refuse(`the node is ${from}, not provisioning`);
    case "callback-failed":
    case "timeout":
      return from === "provisioning" ? allow("failed") : refuse(`the node is ${from}, not provisioning`);
    case "retire":
      return from === "retired" ? refuse("the node is already retired") : allow("retired");
    case "reactivate":
      if (from !== "retired") return refuse(`the node is ${from}, not retired`);
      return allow(facts.hasProfile ? "ready" : "discovered");
  }
  return refuse(`unknown action ${String(action)}`);
}

/**
 * What a node in each state gets when it PXE-boots:
 * - `menu`: a discovered machine is unknown to the operator: the seed's menu (default: local disk).
 * - `image`: a ready node boots its profile's image as the seed did for a listed MAC. The seed's
 *   images are NixOS netboot systems that run from RAM, so this is not an install and needs no
 *   callback; `provision` is the explicit install.
 * - `install`: the image plus `centra.api=` and a fresh single-use `centra.token=`.
 * - `localdisk`: installed; never reinstalled by accident.
 * - `none`: failed (the disk may be half-written and reinstalling is the operator's call) and
 *   retired machines do not boot from the network.
 */
export type BootPlan = "menu" | "image" | "install" | "localdisk" | "none";

export const BOOT_PLAN: Readonly<Record<NodeState, BootPlan>> = {
  discovered: "menu",
  ready: "image",
  provisioning: "install",
  provisioned: "localdisk",
  failed: "none",
  retired: "none",
};
