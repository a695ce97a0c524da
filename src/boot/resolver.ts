import type { Config, ProfileConfig } from "../config/schema.js";
import { DEFAULT_IMAGE_ARCH, type ImageArch, imageArchOf, imageTree } from "../files/state-dir.js";
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
 * Which build a machine boots (pure): the profile's image (its `arches` entry's when one is set) for
 * the machine's own architecture. `fallbackToDefault`: the arches entry named its image itself, so
 * an image added before builds had an architecture (its x86_64 line, where `images add` without
 * `--arch` put it) is what the operator meant for these machines; a profile's plain `image:` never
 * falls back, so an ARM machine is never handed the x86 kernel.
 */
export type WantedBuild =
  | { kind: "build"; image: string; arch: ImageArch; version?: string; fallbackToDefault: boolean }
  /** `${buildarch}` no image can have a build for (state-dir.ts IMAGE_ARCHES). */
  | { kind: "unknown-arch"; image: string; buildarch: string };

export function wantedBuild(configured: ProfileConfig, buildarch: string | undefined): WantedBuild {
  const profile = profileForArch(configured, buildarch);
  const arch = imageArchOf(buildarch);
  if (arch === undefined) return { kind: "unknown-arch", image: profile.image, buildarch: buildarch ?? "" };
  const entry =
    buildarch !== undefined ? configured.arches?.[buildarch as keyof NonNullable<ProfileConfig["arches"]>] : undefined;
  return {
    kind: "build",
    image: profile.image,
    arch,
    ...(profile.version !== undefined ? { version: profile.version } : {}),
    fallbackToDefault: arch !== DEFAULT_IMAGE_ARCH && entry?.image !== undefined,
  };
}

/** The version of `wanted` to boot and the build line it is in; undefined when it has none. */
async function findBuild(
  images: ImageCatalog,
  wanted: Extract<WantedBuild, { kind: "build" }>,
): Promise<{ arch: ImageArch; version: string } | undefined> {
  const lines = wanted.fallbackToDefault ? [wanted.arch, DEFAULT_IMAGE_ARCH] : [wanted.arch];
  for (const arch of lines) {
    if (wanted.version === undefined) {
      const version = await images.currentVersion(wanted.image, arch);
      if (version !== undefined) return { arch, version };
    } else if (await images.hasVersion(wanted.image, wanted.version, arch)) {
      return { arch, version: wanted.version };
    }
  }
  return undefined;
}

/**
 * Boot a profile's image. The version (`current` unless the profile pins one) is resolved here,
 * once, and written into both URLs: if an operator switches `current` between the kernel and the
 * initrd download, the machine still gets a matching pair. The build is the machine's own
 * architecture's (`${buildarch}`); without one the machine is told what is missing, never given
 * another architecture's kernel.
 */
export async function imageBootFor(request: ImageBootRequest): Promise<ImageBoot | UnavailableBoot> {
  const { config, images, baseUrl, profileName, hostname } = request;
  const configured = Object.hasOwn(config.profiles, profileName) ? config.profiles[profileName] : undefined;
  if (!configured) return { kind: "unavailable", reason: `profile ${profileName} is not in the config` };
  const profile = profileForArch(configured, request.buildarch);
  const wanted = wantedBuild(configured, request.buildarch);
  const buildarch = request.buildarch ?? "";
  if (wanted.kind === "unknown-arch") {
    return {
      kind: "unavailable",
      reason: `this machine's architecture ${JSON.stringify(buildarch)} has no image builds (images can be x86_64, arm64 or arm32)`,
      missingBuild: { image: wanted.image, arch: undefined, buildarch },
    };
  }
  const found = await findBuild(images, wanted);
  if (!found) {
    const archFlag = wanted.arch === DEFAULT_IMAGE_ARCH ? "" : ` --arch ${wanted.arch}`;
    const add = `centra-pxe images add ${wanted.image}${archFlag} --kernel F --initrd F`;
    if (wanted.arch !== DEFAULT_IMAGE_ARCH)
      return {
        kind: "unavailable",
        reason:
          wanted.version === undefined
            ? `image ${wanted.image} has no ${wanted.arch} build, and an ${wanted.arch} machine is never given another architecture's kernel (add one with: ${add})`
            : `image ${wanted.image} has no ${wanted.arch} build of version ${wanted.version} (pinned for profile ${profileName}); an ${wanted.arch} machine is never given another architecture's kernel (add it with: ${add} --version ${wanted.version})`,
        missingBuild: { image: wanted.image, arch: wanted.arch, buildarch },
      };
    return {
      kind: "unavailable",
      reason:
        wanted.version === undefined
          ? `image ${wanted.image} has no current version (add one with: ${add})`
          : `image ${wanted.image} version ${wanted.version} (pinned by profile ${profileName}) is not installed`,
    };
  }
  const { arch, version } = found;
  const imageArguments = await images.cmdline(wanted.image, version, arch);
  const cmdline = kernelArguments({
    imageArguments,
    profileName,
    hostname,
    console: profile.console ?? consolesFor(config.boot.console, wanted.arch),
    profileArguments: profile.cmdline,
    extraArguments: request.extraArguments ?? [],
  });
  const imageBase = `${baseUrl}/boot/images/${imageTree(wanted.image, arch)}/${version}`;
  return {
    kind: "image",
    profile: profileName,
    ...(hostname !== undefined ? { hostname } : {}),
    image: wanted.image,
    arch,
    version,
    kernelUrl: `${imageBase}/kernel`,
    initrdUrl: `${imageBase}/initrd`,
    cmdline,
  };
}

/**
 * `boot.console` as it applies on `arch`. The seed's `ttyS0` is the x86 8250 UART; ARM servers
 * (SBSA) and QEMU's `virt` board have a PL011, which Linux names `ttyAMA0`, and no `ttyS0` at all,
 * so an ARM kernel told `console=ttyS0` is silent on the serial line. `ttyS<N>` becomes
 * `ttyAMA<N>` there, its options kept; a profile's `arches.<arch>.console` still says otherwise.
 */
export function consolesFor(consoles: readonly string[], arch: ImageArch): readonly string[] {
  if (arch === DEFAULT_IMAGE_ARCH) return consoles;
  return consoles.map((c) => c.replace(/^ttyS(\d+)/, "ttyAMA$1"));
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
