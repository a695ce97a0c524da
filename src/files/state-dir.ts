import { readlink, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { DEFAULT_IMAGE_ARCH, type ImageArch, isImageArch } from "./image-arch.js";

export { DEFAULT_IMAGE_ARCH, IMAGE_ARCHES, type ImageArch, imageArchOf, isImageArch } from "./image-arch.js";

/**
 * The state directory (PRODUCT.md §4), the one place that knows its layout:
 *
 * ```
 * stateDir/
 *   ipxe/                       bootloaders, served over TFTP and HTTP as they are
 *   images/<name>/<version>/    kernel, initrd (and manifest.json for an image placed by hand)
 *   images/<name>/current       symlink → <version>, switched atomically by rename(2)
 *   images/<name>@<arch>/…      the same for the image's builds of another architecture (arm64)
 *   centra-pxe.db               the embedded SQLite store
 *   consoles/<node id>.log      a node's serial console over LAN, recorded while it provisions
 * ```
 *
 * Every other module builds these paths through the functions here, and checks image and version
 * names with the one rule below.
 */

/** The file of the embedded SQLite store. */
export function databaseFile(stateDir: string): string {
  return join(stateDir, "centra-pxe.db");
}

/** The boot timeline, saved on stop and every few seconds (src/timeline/service.ts). */
export function timelineFile(stateDir: string): string {
  return join(stateDir, "timeline.json");
}

/** `stateDir/consoles`: the recorded serial consoles (SOL) of provisioning nodes. */
export function consolesDir(stateDir: string): string {
  return join(stateDir, "consoles");
}

/** A node's recorded console; undefined for an id that is not one plain file-name segment. */
export function consoleLogFile(stateDir: string, nodeId: string): string | undefined {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(nodeId) ? join(consolesDir(stateDir), `${nodeId}.log`) : undefined;
}

/** `stateDir/ipxe`: the bootloaders, the TFTP root, `/boot/ipxe/<file>` over HTTP. */
export function bootloaderDir(stateDir: string): string {
  return join(stateDir, "ipxe");
}

/** `stateDir/cache/ipxe`: `centra-pxe ipxe build`'s unpacked sources, objects and results (never served). */
export function ipxeBuildCacheDir(stateDir: string): string {
  return join(stateDir, "cache", "ipxe");
}

/** `stateDir/tls`: the CA and server certificate `centra-pxe tls init` makes (never served: the keys are here). */
export function tlsDir(stateDir: string): string {
  return join(stateDir, "tls");
}

/** `stateDir/images`: one directory per image. */
export function imagesDir(stateDir: string): string {
  return join(stateDir, "images");
}

/**
 * The one path and URL segment of an image's build for `arch`: `<name>` for x86_64 (the layout of
 * old state directories), `<name>@<arch>` otherwise. `@` is in no image or version name, so the
 * segment never collides with another image, and the HTTP and TFTP image paths keep their shape:
 * `/boot/images/debian@arm64/12.5/kernel`.
 */
export function imageTree(name: string, arch: ImageArch = DEFAULT_IMAGE_ARCH): string {
  return arch === DEFAULT_IMAGE_ARCH ? name : `${name}@${arch}`;
}

/** The image and architecture an `imageTree` segment names; undefined for anything else. */
export function parseImageTree(segment: string): { name: string; arch: ImageArch } | undefined {
  const at = segment.indexOf("@");
  const name = at < 0 ? segment : segment.slice(0, at);
  const arch = at < 0 ? DEFAULT_IMAGE_ARCH : segment.slice(at + 1);
  if (!isImageName(name) || !isImageArch(arch) || (at >= 0 && arch === DEFAULT_IMAGE_ARCH)) return undefined;
  return { name, arch };
}

/** `stateDir/images/<name>` (`<name>@<arch>` for another architecture): the build's versions and its `current` link. */
export function imageDir(stateDir: string, name: string, arch: ImageArch = DEFAULT_IMAGE_ARCH): string {
  return join(imagesDir(stateDir), imageTree(name, arch));
}

/** `stateDir/images/<name>/<version>`: one version's files (`<name>@<arch>/<version>` for another architecture). */
export function imageVersionDir(
  stateDir: string,
  name: string,
  version: string,
  arch: ImageArch = DEFAULT_IMAGE_ARCH,
): string {
  return join(imageDir(stateDir, name, arch), version);
}

/** The name of the link to an image's current version; never a version name. */
export const CURRENT_LINK = "current";

/** The manifest an image placed by hand may carry (`{ cmdline }`); `images add` records it in the store. */
export const MANIFEST_FILE = "manifest.json";

/**
 * Image and version names: one plain path and URL segment. Letters, digits, '.', '_' and '-',
 * starting with a letter or digit (so never `..` and never one of the hidden `.incoming-…`,
 * `.current-…` entries an update works in), at most 64 characters, and never `current`; a version
 * never `latest` either.
 */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The rule of `isImageName` and `isVersionName`, in words, for error messages. */
export const NAME_RULE = `letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64, not "${CURRENT_LINK}"`;

export function isImageName(name: string): boolean {
  return PLAIN_NAME.test(name) && name !== CURRENT_LINK;
}

/**
 * The seed's versioned URLs (`/boot/nixos/latest/…`) say `latest` for `current`, so a version
 * named `latest` could never be fetched by its name: it is reserved like `current`.
 */
export const LATEST_ALIAS = "latest";

/** The rule of `isVersionName` in words: `NAME_RULE`, and why `latest` is not a version either. */
export const VERSION_RULE = `${NAME_RULE}, not "${LATEST_ALIAS}" (/boot/nixos/${LATEST_ALIAS}/ means ${CURRENT_LINK})`;

export function isVersionName(name: string): boolean {
  return PLAIN_NAME.test(name) && name !== CURRENT_LINK && name !== LATEST_ALIAS;
}

/**
 * The version an image's `current` link points at, when that version exists; undefined otherwise
 * (no such image, no link, or a link to nothing). The link is written as a relative `<version>`;
 * an absolute or nested target is tolerated only when its last segment names a version directory
 * of this same image.
 */
export async function currentVersion(
  stateDir: string,
  name: string,
  arch: ImageArch = DEFAULT_IMAGE_ARCH,
): Promise<string | undefined> {
  if (!isImageName(name)) return undefined;
  let target: string;
  try {
    target = await readlink(join(imageDir(stateDir, name, arch), CURRENT_LINK));
  } catch {
    return undefined;
  }
  const version = basename(target);
  return (await hasImageVersion(stateDir, name, version, arch)) ? version : undefined;
}

/** Whether `images/<name>/<version>/` exists as a directory (names that break the rule never do). */
export async function hasImageVersion(
  stateDir: string,
  name: string,
  version: string,
  arch: ImageArch = DEFAULT_IMAGE_ARCH,
): Promise<boolean> {
  if (!isImageName(name) || !isVersionName(version)) return false;
  try {
    return (await stat(imageVersionDir(stateDir, name, version, arch))).isDirectory();
  } catch {
    return false;
  }
}

/** Why an existing state directory cannot be used, in words that name the path; undefined when it can. */
export async function stateDirProblem(stateDir: string): Promise<string | undefined> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(stateDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      return `no state directory at ${stateDir} (run \`centra-pxe init\` first, or pass the right --state-dir/--config)`;
    if (code === "ENOTDIR") return `${stateDir}: not a directory (a part of the path is a file)`;
    if (code === "EACCES") return `cannot read ${stateDir}: permission denied; run as the service user or root`;
    return `cannot use ${stateDir}: ${(error as Error).message}`;
  }
  if (!info.isDirectory()) return `${stateDir}: not a directory (pass the state directory with --state-dir)`;
  try {
    await stat(databaseFile(stateDir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EACCES")
      return `cannot read ${stateDir}: permission denied; run as the service user or root`;
    return `no database at ${databaseFile(stateDir)}: ${stateDir} is not an initialised state directory (run \`centra-pxe init\` first)`;
  }
  return undefined;
}
