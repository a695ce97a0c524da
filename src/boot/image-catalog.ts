import { readFile, readlink, stat } from "node:fs/promises";
import { basename, join } from "node:path";

/**
 * Read-only view of the netboot images in `stateDir/images/<name>/<version>/` (docs/LAYOUT.md).
 * Looked up on every request, never cached: `images use` switches `current` while we serve, and
 * the next machine that asks must get the new version.
 */
export interface ImageCatalog {
  /** The version `current` points at, or undefined when the image has no current version. */
  currentVersion(image: string): Promise<string | undefined>;
  /** Whether `images/<image>/<version>/` exists (a pinned profile may name a missing version). */
  hasVersion(image: string, version: string): Promise<boolean>;
  /** Kernel arguments the image was added with (manifest.json `cmdline`), "" when none. */
  cmdline(image: string, version: string): Promise<string>;
}

/** Image and version names as they may appear in a path and a URL: one plain segment. */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isPlainName(name: string): boolean {
  return PLAIN_NAME.test(name) && name !== "current";
}

/**
 * The catalog over the files on disk, as `centra-pxe images add|use` leaves them. `recordedCmdline`
 * looks up the arguments recorded when the image was added (the store); without it, or when it has
 * no answer, the version's manifest.json is read.
 */
export function createFileImageCatalog(
  stateDir: string,
  recordedCmdline?: (image: string, version: string) => Promise<string | undefined>,
): ImageCatalog {
  const imagesDir = join(stateDir, "images");

  const hasVersion = async (image: string, version: string): Promise<boolean> => {
    if (!isPlainName(image) || !isPlainName(version)) return false;
    try {
      return (await stat(join(imagesDir, image, version))).isDirectory();
    } catch {
      return false;
    }
  };

  return {
    async currentVersion(image) {
      if (!isPlainName(image)) return undefined;
      let target: string;
      try {
        target = await readlink(join(imagesDir, image, "current"));
      } catch {
        return undefined;
      }
      // `current` is written as a relative `<version>`; an absolute or nested target is tolerated
      // only when its last segment names a version directory of this same image.
      const version = basename(target);
      return (await hasVersion(image, version)) ? version : undefined;
    },
    hasVersion,
    async cmdline(image, version) {
      if (!isPlainName(image) || !isPlainName(version)) return "";
      const recorded = await recordedCmdline?.(image, version);
      if (recorded !== undefined) return recorded;
      try {
        const manifest: unknown = JSON.parse(await readFile(join(imagesDir, image, version, "manifest.json"), "utf8"));
        if (typeof manifest === "object" && manifest !== null && "cmdline" in manifest && typeof manifest.cmdline === "string") {
          return manifest.cmdline;
        }
      } catch {
        // No manifest (an image placed by hand, as the seed did) simply has no extra arguments.
      }
      return "";
    },
  };
}
