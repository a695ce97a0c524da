import type { Config } from "../config/schema.js";
import type { ImageArch } from "../files/state-dir.js";
import type { LocalBootMethod } from "./boot-chain.js";

/**
 * The boot decision's vocabulary: what iPXE tells us about a machine, and what we answer. Plain
 * data, no I/O, so the decision and the rendering can be tested as tables and golden files.
 */

/** iPXE's `${platform}`: the firmware iPXE runs on. Decides how an initrd reaches the kernel. */
export type Platform = "pcbios" | "efi";

/** A machine as its iPXE describes itself when it chains to the per-machine script. */
export interface MachineIdentity {
  /** Normalised `aa:bb:cc:dd:ee:ff` (iPXE `${mac:hexhyp}`, normalised on the way in). */
  mac: string;
  /** iPXE `${buildarch}`: `i386`, `x86_64`, `arm64`, … (what iPXE was built for, not the CPU). */
  buildarch: string;
  platform: Platform;
  /** SMBIOS system UUID (`${uuid}`); empty when the firmware has none. */
  uuid: string;
  /** SMBIOS serial number (`${serial}`); empty when the firmware has none. */
  serial: string;
  /** A profile picked from the menu; honoured only for machines the config does not know. */
  requestedProfile?: string;
}

/** Boot a netboot image: the known-node path and a profile picked from the menu. */
export interface ImageBoot {
  kind: "image";
  profile: string;
  /** Undefined for an unknown machine that picked a profile from the menu. */
  hostname?: string;
  image: string;
  /** The image's build line the version is of: the machine's own architecture. */
  arch: ImageArch;
  /** A concrete version, resolved when the script is rendered so kernel and initrd always match. */
  version: string;
  kernelUrl: string;
  initrdUrl: string;
  /** Every kernel argument except iPXE's `initrd=`, which depends on the platform (see ipxe.ts). */
  cmdline: string;
}

/** An unknown machine: the seed's interactive menu. */
export interface MenuBoot {
  kind: "menu";
  title: string;
  items: { profile: string; label: string }[];
  /** What happens when nobody chooses before the timeout: a profile name or "localdisk". */
  defaultChoice: string;
  timeoutMs: number;
}

/** An installed machine goes to its own disk (the lifecycle's `provisioned` state). */
export interface LocalDiskBoot {
  kind: "localdisk";
  /** The node's or profile's `localBoot` (boot-chain.ts); undefined: per platform. */
  method?: LocalBootMethod;
}

/** Do not boot this machine from the network (the lifecycle's `retired` state). */
export interface NoBoot {
  kind: "none";
  reason: string;
}

/** We would boot this machine but cannot right now (e.g. its image has no version installed). */
export interface UnavailableBoot {
  kind: "unavailable";
  reason: string;
  /**
   * Set when the image has no build for the machine's architecture: it is never given another
   * architecture's kernel (iPXE would stop with "Exec format error"). For the node's event.
   */
  missingBuild?: { image: string; arch: ImageArch | undefined; buildarch: string };
}

export type BootSpec = ImageBoot | MenuBoot | LocalDiskBoot | NoBoot | UnavailableBoot;

/**
 * Machine → boot spec: the one boundary the provisioning lifecycle replaces later. Not knowing a
 * machine is a normal answer (a menu), never an error.
 */
export interface BootResolver {
  resolve(machine: MachineIdentity, context: ResolveContext): Promise<BootSpec>;
}

export interface ResolveContext {
  /** Absolute base for URLs in scripts, e.g. `http://10.0.100.10` (no trailing slash). */
  baseUrl: string;
  /** The config in force for this request (it changes on SIGHUP; never cache it). */
  config: Config;
  /** The address the request came from; the lifecycle hands a callback token only to the machine's own. */
  remote?: string;
  /** A HEAD request: answer the same, change nothing (no sighting, no token, no event). */
  probe?: boolean;
  /**
   * The firmware's bootloader download at the URL naming the machine (boot-chain.ts
   * `machineBootloaderUrl`), asked as a probe: whether it is withheld (`localBoot: http-404`) is
   * told only to whom the lifecycle would tell the machine's own; anyone else gets the answer of a
   * machine nobody registered.
   */
  bootloader?: boolean;
}
