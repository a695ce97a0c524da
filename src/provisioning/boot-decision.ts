import { unmappedAddress } from "../config/primitives.js";
import type { NodeState } from "../lifecycle/lifecycle.js";
import { BOOT_PLAN } from "../lifecycle/lifecycle.js";

/**
 * The one boot decision of `machine.ipxe` (PRODUCT.md §3, §5) as a pure function: inventory facts
 * in, a plan and the effects to apply out. The resolver (boot-resolver.ts) gathers the facts and
 * applies the effects in one place after it; nothing here reads, writes or logs.
 */

/** Who asked for the script, as far as DHCP can tell. */
export type Requester =
  /** The address DHCP leased or reserved to this MAC (server mode), or saw it request (proxy mode). */
  | "machine"
  /** Another address: whoever it is, it is not where that machine is. */
  | "other"
  /** DHCP knows no address for this MAC (dhcp off, no lease yet): nobody can be told apart. */
  | "unknown";

/**
 * Who `remote` is to the machine DHCP associates `expected` with (the DHCP part's `addressOf` of
 * its MAC; undefined when DHCP knows none). IPv4-mapped IPv6 (a dual-stack socket) is IPv4.
 */
export function requesterOf(expected: string | undefined, remote: string | undefined): Requester {
  if (expected === undefined) return "unknown";
  return remote !== undefined && unmappedAddress(remote) === unmappedAddress(expected) ? "machine" : "other";
}

export interface BootFacts {
  /** The node that holds this MAC. By MAC only: a UUID or serial from the network never picks a node. */
  node: { id: string; state: NodeState; hasProfile: boolean } | undefined;
  requester: Requester;
  /** A HEAD request: the same answer, and no effect at all. */
  probe: boolean;
  /** Whether the node's image can be booted now (its image has the version it needs). */
  imageAvailable: boolean;
  /** `provisioning.installTokenToAnyAddress`: the escape hatch for networks where DHCP cannot vouch. */
  tokenToAnyAddress: boolean;
  /** The profile a config selector picked for this machine (selectors.ts), if any. */
  selectedProfile?: string;
  /**
   * The firmware's bootloader download at the URL naming the machine (src/boot `machineBootloaderUrl`),
   * not its script: only whether the bootloader is withheld (`localBoot: http-404`) depends on the node.
   */
  bootloader?: boolean;
}

/** Why a node in `provisioning` gets its image without the callback token. */
export type TokenWithheld = "not-the-machine-address" | "machine-address-unknown" | "image-unavailable" | "probe";

export type BootPlanned =
  /** The config's resolver decides: the menu, or a profile picked from it. */
  | { boot: "base" }
  /** A selector's profile for a machine nobody registered: its image only (no hostname, no token). */
  | { boot: "selected"; profile: string }
  /** The node's profile image, nothing more (a `ready` node). */
  | { boot: "image" }
  /** The node's image with the install callback (`centra.api=`), with or without its token. */
  | { boot: "install"; token: true }
  | { boot: "install"; token: false; withheld: TokenWithheld }
  | { boot: "localdisk" }
  | { boot: "none"; why: "retired" | "failed" };

export interface BootEffects {
  /** Record the sighting (budgeted and batched by Sightings). */
  sighting: boolean;
  /** Fetch (or on the attempt's first install boot, issue) the attempt's callback token. */
  token: boolean;
  /** Tell the operator a token was withheld (an event and a log line, rate-limited). */
  withheld?: TokenWithheld;
}

/**
 * Whether the requester may be told what is the machine's own (its callback token; whether its
 * firmware's bootloader is withheld): DHCP vouches that it asks from the machine's address, or the
 * operator trusts any address (`provisioning.installTokenToAnyAddress`, for networks where DHCP
 * cannot vouch). The one rule for both.
 */
export function speaksForMachine(facts: Pick<BootFacts, "requester" | "tokenToAnyAddress">): boolean {
  return facts.requester === "machine" || facts.tokenToAnyAddress;
}

export function decideBoot(facts: BootFacts): { plan: BootPlanned; effects: BootEffects } {
  const effects: BootEffects = { sighting: !facts.probe, token: false };
  const { node } = facts;
  // The per-machine bootloader URL from anyone else: answered as for a machine nobody registered
  // (the bootloader every machine gets at /boot/ipxe/<file>), so a stranger who names a MAC learns
  // nothing of it, installed or not. The machine itself, told its URL by DHCP, asks from its address.
  if (facts.bootloader && !speaksForMachine(facts)) return { plan: { boot: "base" }, effects };
  // Selectors stand in for the menu only: for a machine with no record, or one only discovered.
  const unlisted: BootPlanned =
    facts.selectedProfile !== undefined ? { boot: "selected", profile: facts.selectedProfile } : { boot: "base" };
  if (!node) return { plan: unlisted, effects };
  switch (BOOT_PLAN[node.state]) {
    case "menu":
      return { plan: unlisted, effects };
    case "localdisk":
      return { plan: { boot: "localdisk" }, effects };
    case "none":
      return { plan: { boot: "none", why: node.state === "retired" ? "retired" : "failed" }, effects };
    case "image":
      return { plan: node.hasProfile ? { boot: "image" } : { boot: "base" }, effects };
    case "install": {
      if (!node.hasProfile) return { plan: { boot: "base" }, effects };
      // No token for a boot that cannot happen: the attempt's clock keeps running.
      const withheld: TokenWithheld | undefined = !facts.imageAvailable
        ? "image-unavailable"
        : speaksForMachine(facts)
          ? undefined
          : facts.requester === "other"
            ? "not-the-machine-address"
            : "machine-address-unknown";
      if (withheld !== undefined) {
        // A missing image is already explained by the script; a withheld token is news for the operator.
        const notify = withheld !== "image-unavailable" && !facts.probe;
        return {
          plan: { boot: "install", token: false, withheld },
          effects: { ...effects, ...(notify ? { withheld } : {}) },
        };
      }
      // A HEAD asks whether the script is there; it gets no token and starts nothing.
      if (facts.probe) return { plan: { boot: "install", token: false, withheld: "probe" }, effects };
      return { plan: { boot: "install", token: true }, effects: { ...effects, token: true } };
    }
  }
}
