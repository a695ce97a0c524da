import type { Config, ProfileConfig } from "../config/schema.js";
import type { ImageCatalog } from "./image-catalog.js";
import type { BootResolver, BootSpec, ImageBoot, MenuBoot, UnavailableBoot } from "./spec.js";

/** The seed's menu title; operators and their runbooks know the screen by it. */
export const MENU_TITLE = "Centra Cloud - Bare-Metal Provisioning";

/** The seed's wording for its three profiles; other profiles are listed by name. */
const SEED_PROFILE_LABELS: Record<string, string> = {
  "control-plane": "Control Plane Node (All Services)",
  worker: "Worker Node (Compute Services)",
  "all-in-one": "All-in-One Node (Testing/Homelab)",
};

/**
 * The resolver of the static config (PRODUCT.md §2): a MAC listed under `nodes` boots its profile,
 * anything else gets the menu. The provisioning lifecycle replaces it with one backed by the store.
 */
export function createConfigResolver(images: ImageCatalog): BootResolver {
  return {
    async resolve(machine, { baseUrl, config }): Promise<BootSpec> {
      // A node's other NICs (`macs`) boot it too; a node without a profile (a reservation only) gets the menu.
      const node = Object.hasOwn(config.nodes, machine.mac)
        ? config.nodes[machine.mac]
        : Object.values(config.nodes).find((n) => n.macs?.includes(machine.mac));
      const buildarch = machine.buildarch;
      if (node?.profile !== undefined)
        return imageBootFor({ config, images, baseUrl, profileName: node.profile, hostname: node.hostname, buildarch });
      const picked = machine.requestedProfile;
      if (picked !== undefined && Object.hasOwn(config.profiles, picked)) {
        return imageBootFor({ config, images, baseUrl, profileName: picked, buildarch });
      }
      return menuFor(config);
    },
  };
}

/**
 * The default boot resolver of the daemon: the config resolver over the image catalog of the
 * config in force for each request (a reload that moves stateDir is seen at once). The HTTP part
 * uses it alone; the provisioning lifecycle falls back to it for machines it leaves to the menu.
 */
export function createDefaultResolver(images: (config: Config) => ImageCatalog): BootResolver {
  return { resolve: (machine, context) => createConfigResolver(images(context.config)).resolve(machine, context) };
}

/** The seed's menu for a machine nobody registered, over every configured profile. */
export function menuFor(config: Config): MenuBoot {
  return {
    kind: "menu",
    title: MENU_TITLE,
    items: Object.keys(config.profiles).map((profile) => ({ profile, label: SEED_PROFILE_LABELS[profile] ?? profile })),
    // Installing wipes disks; a machine nobody registered must not do that just because nobody
    // was at the console when the timeout ran out. Booting the local disk is the harmless default.
    defaultChoice: "localdisk",
    timeoutMs: config.boot.menuTimeout,
  };
}

export interface ImageBootRequest {
  config: Config;
  images: ImageCatalog;
  baseUrl: string;
  profileName: string;
  hostname?: string;
  /** More kernel arguments, e.g. the lifecycle's `centra.api=` and `centra.token=`. */
  extraArguments?: string[];
  /** The machine's `${buildarch}`: picks the profile's `arches` entry (its image, version, console). */
  buildarch?: string;
}

/**
 * The profile as it applies to one architecture: its `arches[buildarch]` entry over its defaults.
 * An entry's image without a version boots that image's current, not the default's pinned version.
 */
export function profileForArch(
  profile: ProfileConfig,
  buildarch: string | undefined,
): ProfileConfig & { console?: string[] } {
  const entry =
    buildarch !== undefined ? profile.arches?.[buildarch as keyof NonNullable<ProfileConfig["arches"]>] : undefined;
  if (!entry) return profile;
  const image = entry.image ?? profile.image;
  const version = entry.version ?? (entry.image !== undefined ? undefined : profile.version);
  const { version: _dropped, ...rest } = profile;
  return {
    ...rest,
    image,
    ...(version !== undefined ? { version } : {}),
    ...(entry.console ? { console: entry.console } : {}),
  };
}

/**
 * Boot a profile's image. The version (`current` unless the profile pins one) is resolved here,
 * once, and written into both URLs: if an operator switches `current` between the kernel and the
 * initrd download, the machine still gets a matching pair.
 */
export async function imageBootFor(request: ImageBootRequest): Promise<ImageBoot | UnavailableBoot> {
  const { config, images, baseUrl, profileName, hostname } = request;
  const configured = Object.hasOwn(config.profiles, profileName) ? config.profiles[profileName] : undefined;
  if (!configured) return { kind: "unavailable", reason: `profile ${profileName} is not in the config` };
  const profile = profileForArch(configured, request.buildarch);
  let version = profile.version;
  if (version === undefined) {
    version = await images.currentVersion(profile.image);
    if (version === undefined) {
      return {
        kind: "unavailable",
        reason: `image ${profile.image} has no current version (add one with: centra-pxe images add ${profile.image} --kernel F --initrd F)`,
      };
    }
  } else if (!(await images.hasVersion(profile.image, version))) {
    return {
      kind: "unavailable",
      reason: `image ${profile.image} version ${version} (pinned by profile ${profileName}) is not installed`,
    };
  }
  const imageArguments = await images.cmdline(profile.image, version);
  const cmdline = kernelArguments({
    imageArguments,
    profileName,
    hostname,
    console: profile.console ?? config.boot.console,
    profileArguments: profile.cmdline,
    extraArguments: request.extraArguments ?? [],
  });
  const imageBase = `${baseUrl}/boot/images/${profile.image}/${version}`;
  return {
    kind: "image",
    profile: profileName,
    ...(hostname !== undefined ? { hostname } : {}),
    image: profile.image,
    version,
    kernelUrl: `${imageBase}/kernel`,
    initrdUrl: `${imageBase}/initrd`,
    cmdline,
  };
}

/**
 * The kernel command line, in the seed's order: the image's own arguments (NixOS netboot images
 * need their `init=`), then `centra.profile=`, `centra.hostname=`, the consoles, and last the
 * profile's arguments so an operator can override anything before them (the kernel keeps the
 * last value of a repeated parameter).
 */
export function kernelArguments(parts: {
  imageArguments: string;
  profileName: string;
  hostname?: string | undefined;
  console: readonly string[];
  profileArguments: string;
  extraArguments: readonly string[];
}): string {
  const words = [
    parts.imageArguments,
    `centra.profile=${parts.profileName}`,
    parts.hostname !== undefined ? `centra.hostname=${parts.hostname}` : "",
    ...parts.console.map((c) => `console=${c}`),
    parts.profileArguments,
    ...parts.extraArguments,
  ];
  // One line of an iPXE script: a newline would start a new command, so whitespace collapses.
  return words.join(" ").replace(/\s+/g, " ").trim();
}
