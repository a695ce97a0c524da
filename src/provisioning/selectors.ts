import type { Platform } from "../boot/spec.js";
import type { SelectorConfig } from "../config/schema.js";

/**
 * Profile selectors (config `selectors`, like Matchbox groups): facts about a machine nobody listed
 * one by one in, a profile out. Pure; the resolver gathers the facts, `decideBoot` decides what a
 * match means. A match only picks the image such a machine boots instead of the menu; it never
 * gives it a reservation, a hostname or a callback token, so a UUID or serial the network made up
 * gains nothing a stranger could not pick from the menu anyway.
 */
export interface SelectorFacts {
  /** `bios`, `efi-x64`, … (see archOf); undefined when iPXE did not say. */
  arch: string | undefined;
  /** SMBIOS UUID, lower case; empty when the firmware has none. */
  uuid: string;
  serial: string;
  /** The labels of the machine's inventory record (an admin labelled a discovered machine), else none. */
  labels: Readonly<Record<string, string>>;
}

/** The first selector whose every condition holds (the order of the file), or undefined. */
export function selectProfile(
  selectors: readonly SelectorConfig[],
  facts: SelectorFacts,
): { profile: string; index: number } | undefined {
  for (const [index, { match, profile }] of selectors.entries()) {
    if (Object.keys(match).length === 0) continue; // refused by the schema; never a catch-all here either
    if (match.arch !== undefined && match.arch !== facts.arch) continue;
    if (match.uuid !== undefined && match.uuid !== facts.uuid.toLowerCase()) continue;
    if (match.serial !== undefined && match.serial !== facts.serial) continue;
    if (match.labels !== undefined && !Object.entries(match.labels).every(([k, v]) => facts.labels[k] === v)) continue;
    return { profile, index };
  }
  return undefined;
}

/** iPXE's `${platform}` and `${buildarch}` in DHCP's firmware names (src/boot/firmware.ts `Firmware`). */
export function archOf(platform: Platform, buildarch: string): string | undefined {
  if (platform === "pcbios") return "bios";
  switch (buildarch) {
    case "i386":
      return "efi-ia32";
    case "x86_64":
      return "efi-x64";
    case "arm32":
      return "efi-arm32";
    case "arm64":
      return "efi-arm64";
    default:
      return undefined;
  }
}
