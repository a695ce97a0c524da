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

/**
 * The bootloaders a flavoured firmware attempt is answered with (`ipxe: http` gets `ipxe.efi` by
 * URL): a machine that fetched one of them has left its firmware's DHCP behind, so its next
 * DISCOVER is a new boot (`decideFlavour`).
 */
export const FLAVOUR_BOOTLOADERS: ReadonlySet<string> = new Set(IPXE_FLAVOURS.filter((f) => f !== "http"));

/** One machine's latest firmware boot attempt, as the fallback decision remembers it. */
export interface BootAttempt {
  flavour: IpxeFlavour;
  /** When DHCP first answered this attempt (ms). */
  answeredAt: number;
  /** The machine fetched its bootloader (TFTP, or HTTP for UEFI HTTP boot) since: its DHCP is over. */
  bootloaderFetched: boolean;
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
 * The flavour for a firmware DHCP `message` (not iPXE's own; `DISCOVER`, `REQUEST`, `INFORM`: the
 * option 53 names) of a machine whose chain prefers `preferred`.
 *
 * Only a DISCOVER begins a boot attempt (RFC 2131 §4.4.1: a client starts in INIT), and only once
 * the current one is over: once its bootloader was fetched (or its script, which the bootloader
 * asked for). A REQUEST is always the attempt under way, and so is a DISCOVER before the bootloader
 * fetch: a ROM retransmitting it (PXE 2.1: after 4, 8, 16 and 32 s), OVMF's PXE → HTTP boot
 * hand-over, a DORA slowed by a loaded server. None of that is a matter of time: a window short
 * enough to split a quick reboot from a cut attempt also split a slow DORA (a false fallback), and
 * one long enough for any DORA merged a reboot within it with the attempt it cut.
 *
 * `upperBoundMs` (`boot.attemptWindow`) is for where the fetch is never seen: a bootloader served
 * by another TFTP server, a firmware that gave up before fetching. A DISCOVER that long after the
 * attempt's first answer begins a new one anyway, so such a machine still falls back; it must
 * outlast a ROM's whole DISCOVER schedule (the default minute does).
 *
 * A new attempt after one that got its script keeps that flavour; after one that stalled before its
 * script arrived (iPXE hung "initialising devices", or the firmware never ran it), the next flavour,
 * round the list, so a machine that stalls on every one still tries each in turn.
 */
export function decideFlavour(
  previous: BootAttempt | undefined,
  preferred: IpxeFlavour,
  message: string,
  now: number,
  upperBoundMs: number,
): FlavourDecision {
  const fresh = (flavour: IpxeFlavour): BootAttempt => ({
    flavour,
    answeredAt: now,
    bootloaderFetched: false,
    scriptSeen: false,
  });
  if (!previous) return { flavour: preferred, attempt: fresh(preferred) };
  const over = previous.bootloaderFetched || previous.scriptSeen || now - previous.answeredAt >= upperBoundMs;
  if (message !== "DISCOVER" || !over) return { flavour: previous.flavour, attempt: previous };
  if (previous.scriptSeen) return { flavour: previous.flavour, attempt: fresh(previous.flavour) };
  const next = IPXE_FLAVOURS[(IPXE_FLAVOURS.indexOf(previous.flavour) + 1) % IPXE_FLAVOURS.length]!;
  const waited = Math.round((now - previous.answeredAt) / 1000);
  const stage = previous.bootloaderFetched
    ? "fetched its bootloader but never its boot script"
    : "never fetched its boot script";
  return {
    flavour: next,
    attempt: fresh(next),
    fallback: {
      from: previous.flavour,
      to: next,
      reason: `the attempt answered with ${previous.flavour} ${waited} s ago ${stage}; trying ${next}`,
    },
  };
}
