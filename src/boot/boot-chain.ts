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
  /**
   * Which iPXE a UEFI x86-64 machine gets: `ipxe.efi` (iPXE's own NIC drivers), `snponly.efi` (the
   * firmware's NIC driver, for NICs where ipxe.efi hangs at "initialising devices"), or `http`
   * (no PXE answer at all, so the firmware goes on to UEFI HTTP boot, which gets ipxe.efi by URL).
   * Undefined: the firmware table's order.
   */
  flavour?: IpxeFlavour;
  /** How an installed machine leaves iPXE for its disk (ipxe.ts); undefined: per platform. */
  localBoot?: LocalBootMethod;
}

export const DEFAULT_BOOT_CHAIN: BootChain = { secureBoot: false };

/** The iPXE flavours, in the order a stalled machine falls back through them. */
export const IPXE_FLAVOURS = ["ipxe.efi", "snponly.efi", "http"] as const;
export type IpxeFlavour = (typeof IPXE_FLAVOURS)[number];

/**
 * `exit` hands back to the firmware's boot manager (the UEFI default); `sanboot` boots the first
 * disk itself (the BIOS default), for firmware that answers iPXE's `exit` by PXE booting again.
 * `http-404` answers the machine's boot script with 404 (iPXE's entry script then exits to the
 * firmware), and a UEFI HTTP boot firmware's own bootloader download too: a network boot that
 * failed is what every firmware moves on from to its next boot option, the disk, with no iPXE
 * `exit` for it to misread. Never a redirect: EDK2's HTTP boot fails on a 301 as well, but as an error.
 */
export const LOCAL_BOOT_METHODS = ["exit", "sanboot", "http-404"] as const;
export type LocalBootMethod = (typeof LOCAL_BOOT_METHODS)[number];

/**
 * The path segment before the bootloader's name in a UEFI HTTP boot URL that names the machine
 * (`/boot/ipxe/machine/<mac>/ipxe.efi`): firmware asks for its bootloader before anything says
 * who it is, so a machine whose answer depends on its state (`localBoot: http-404`) is told a URL
 * of its own. The bootloader's name stays last: EDK2 goes by the URL's file name.
 */
export const MACHINE_BOOTLOADER_SEGMENT = "machine";

/** `http://…/boot/ipxe/ipxe.efi` for the machine `mac`: `http://…/boot/ipxe/machine/52-54-00-12-34-56/ipxe.efi`. */
export function machineBootloaderUrl(url: string, mac: string): string {
  const cut = url.lastIndexOf("/");
  return `${url.slice(0, cut)}/${MACHINE_BOOTLOADER_SEGMENT}/${mac.toLowerCase().replace(/:/g, "-")}${url.slice(cut)}`;
}

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
  const flavour = node?.ipxe ?? profile?.ipxe;
  const localBoot = node?.localBoot ?? profile?.localBoot;
  return {
    secureBoot: node?.secureBoot ?? profile?.secureBoot ?? DEFAULT_BOOT_CHAIN.secureBoot,
    ...(flavour !== undefined ? { flavour } : {}),
    ...(localBoot !== undefined ? { localBoot } : {}),
  };
}

/** One machine's latest firmware boot attempt, as the fallback decision remembers it. */
export interface BootAttempt {
  flavour: IpxeFlavour;
  /** When DHCP first answered this attempt (ms). */
  answeredAt: number;
  /** A boot script (machine.ipxe, or grub's config) arrived since: this flavour works here. */
  scriptSeen: boolean;
}

export interface FlavourDecision {
  flavour: IpxeFlavour;
  attempt: BootAttempt;
  /** Set when this attempt falls back from the flavour of a stalled one: for the machine's timeline. */
  fallback?: { from: IpxeFlavour; to: IpxeFlavour; reason: string };
}

/**
 * The flavour for a firmware DHCP request (not iPXE's own) of a machine whose chain prefers
 * `preferred`. Requests within `sameAttemptMs` of the attempt's first answer are that attempt
 * (DISCOVER, REQUEST, retransmissions, the PXE → HTTP boot hand-over): same flavour. A later one is
 * a new attempt: after one that got its script, the same flavour; after one that stalled before its
 * script arrived (iPXE hung "initialising devices", or the firmware never ran it), the next flavour,
 * round the list, so a machine that stalls on every one still tries each in turn.
 */
export function decideFlavour(
  previous: BootAttempt | undefined,
  preferred: IpxeFlavour,
  now: number,
  sameAttemptMs: number,
): FlavourDecision {
  if (!previous) return { flavour: preferred, attempt: { flavour: preferred, answeredAt: now, scriptSeen: false } };
  if (now - previous.answeredAt < sameAttemptMs) return { flavour: previous.flavour, attempt: previous };
  if (previous.scriptSeen)
    return { flavour: previous.flavour, attempt: { flavour: previous.flavour, answeredAt: now, scriptSeen: false } };
  const next = IPXE_FLAVOURS[(IPXE_FLAVOURS.indexOf(previous.flavour) + 1) % IPXE_FLAVOURS.length]!;
  const waited = Math.round((now - previous.answeredAt) / 1000);
  return {
    flavour: next,
    attempt: { flavour: next, answeredAt: now, scriptSeen: false },
    fallback: {
      from: previous.flavour,
      to: next,
      reason: `the attempt answered with ${previous.flavour} ${waited} s ago never fetched its boot script; trying ${next}`,
    },
  };
}
