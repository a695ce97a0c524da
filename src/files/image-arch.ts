/**
 * Image architectures (PRODUCT.md §2, §4), plain data with no I/O: the store's records and the
 * dashboard's types name them, and the state directory's layout (state-dir.ts) keys builds by them.
 */

/**
 * The architectures an image can have builds for, by iPXE's `${buildarch}` names (grub's
 * `$grub_cpu`). One image name holds one build line per architecture, each with its own versions
 * and `current`: a profile's `image: debian` boots debian's arm64 build on an ARM server and its
 * x86_64 build everywhere else.
 */
export const IMAGE_ARCHES = ["x86_64", "arm64", "arm32"] as const;
export type ImageArch = (typeof IMAGE_ARCHES)[number];

/**
 * The architecture of an image added without `--arch`, and of every image made before images had
 * one: its files stay where they always were, `images/<name>/`, so old state directories serve as
 * they are, with no migration.
 */
export const DEFAULT_IMAGE_ARCH: ImageArch = "x86_64";

export function isImageArch(value: string): value is ImageArch {
  return (IMAGE_ARCHES as readonly string[]).includes(value);
}

/**
 * The image architecture a machine boots, from its iPXE `${buildarch}` (or grub's `$grub_cpu`).
 * `i386` is x86 too: BIOS machines run undionly.kpxe, an i386 iPXE, whatever their CPU, and boot
 * the x86_64 build as they always did. An architecture no image can have (`riscv64`) is undefined:
 * such a machine gets no kernel rather than one it cannot run.
 */
export function imageArchOf(buildarch: string | undefined): ImageArch | undefined {
  if (buildarch === undefined || buildarch === "" || buildarch === "i386") return DEFAULT_IMAGE_ARCH;
  return isImageArch(buildarch) ? buildarch : undefined;
}
