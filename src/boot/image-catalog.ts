import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DEFAULT_IMAGE_ARCH,
  type ImageArch,
  MANIFEST_FILE,
  currentVersion,
  hasImageVersion,
  imageVersionDir,
  isImageName,
  isVersionName,
} from "../files/state-dir.js";

/**
 * Read-only view of the netboot images in `stateDir/images/<name>/<version>/` (docs/LAYOUT.md),
 * per architecture (`images/<name>@arm64/…` for an image's arm64 build). Looked up on every
 * request, never cached: `images use` switches `current` while we serve, and the next machine that
 * asks must get the new version. `arch` defaults to x86_64 everywhere.
 */
export interface ImageCatalog {
  /** The version `current` points at, or undefined when the image has no current version. */
  currentVersion(image: string, arch?: ImageArch): Promise<string | undefined>;
  /** Whether `images/<image>/<version>/` exists (a pinned profile may name a missing version). */
  hasVersion(image: string, version: string, arch?: ImageArch): Promise<boolean>;
  /** Kernel arguments the image was added with (manifest.json `cmdline`), "" when none. */
  cmdline(image: string, version: string, arch?: ImageArch): Promise<string>;
}

/**
 * The catalog over the files on disk, as `centra-pxe images add|use` leaves them. `recordedCmdline`
 * looks up the arguments recorded when the image was added (the store); without it, or when it has
 * no answer, the version's manifest.json is read.
 */
export function createFileImageCatalog(
  stateDir: string,
  recordedCmdline?: (image: string, version: string, arch: ImageArch) => Promise<string | undefined>,
): ImageCatalog {
  return {
    currentVersion: (image, arch = DEFAULT_IMAGE_ARCH) => currentVersion(stateDir, image, arch),
    hasVersion: (image, version, arch = DEFAULT_IMAGE_ARCH) => hasImageVersion(stateDir, image, version, arch),
    async cmdline(image, version, arch = DEFAULT_IMAGE_ARCH) {
      if (!isImageName(image) || !isVersionName(version)) return "";
      const recorded = await recordedCmdline?.(image, version, arch);
      if (recorded !== undefined) return recorded;
      try {
        const manifest: unknown = JSON.parse(
          await readFile(join(imageVersionDir(stateDir, image, version, arch), MANIFEST_FILE), "utf8"),
        );
        if (
          typeof manifest === "object" &&
          manifest !== null &&
          "cmdline" in manifest &&
          typeof manifest.cmdline === "string"
        ) {
          return manifest.cmdline;
        }
      } catch {
        // No manifest (an image placed by hand, as the seed did) simply has no extra arguments.
      }
      return "";
    },
  };
}
