import type { Config, NodeConfig } from "../config/schema.js";

/**
 * Which boot chain a machine's firmware is answered with (PRODUCT.md §3): the profile's choice,
 * overridden by the node's own. Pure: the config in force and what the inventory holds for the
 * MAC in, plain data out; DHCP asks for every boot answer.
 */
export interface BootChain {
  /**
   * UEFI gets Debian's signed shim → grub → the signed kernel instead of iPXE: a firmware with
   * Secure Boot on runs only images signed by a key in its db (Microsoft's UEFI CA on real
   * machines), and iPXE is not signed by it; shim is, and shim trusts Debian's grub and kernel.
   */
  secureBoot: boolean;
}

export const DEFAULT_BOOT_CHAIN: BootChain = { secureBoot: false };

/** The config's node for `mac`: listed under it, or one of its other NICs (`macs`). */
export function configNodeOf(config: Config, mac: string): NodeConfig | undefined {
  if (Object.hasOwn(config.nodes, mac)) return config.nodes[mac];
  return Object.values(config.nodes).find((n) => n.macs?.includes(mac));
}

/**
 * The chain for the machine with `mac`, whose inventory record (if any) names `profile`. The
 * config's node listing wins over the inventory's profile (it is what the operator wrote for this
 * very machine), and a key the node leaves out falls back to its profile's.
 */
export function bootChainOf(config: Config, mac: string, inventoryProfile?: string): BootChain {
  const node = configNodeOf(config, mac);
  const profileName = node?.profile ?? inventoryProfile;
  const profile =
    profileName !== undefined && Object.hasOwn(config.profiles, profileName) ? config.profiles[profileName] : undefined;
  return { secureBoot: node?.secureBoot ?? profile?.secureBoot ?? DEFAULT_BOOT_CHAIN.secureBoot };
}
