import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, rm, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CentraError, NotFoundError } from "../errors.js";
import {
  CURRENT_LINK,
  DEFAULT_IMAGE_ARCH,
  type ImageArch,
  NAME_RULE,
  VERSION_RULE,
  currentVersion,
  imageDir as imageDirOf,
  imageTree,
  imageVersionDir,
  isImageName,
  isVersionName,
} from "../files/state-dir.js";
import type { ImageFileRecord, ImageVersionRecord, Store } from "../store/store.js";

/**
 * Netboot images on disk (PRODUCT.md §4): `stateDir/images/<name>/<version>/{kernel,initrd}` and a
 * `current` symlink per image, the seed's `nixos/24.05`, `nixos/24.11`, `latest` scheme. The files
 * are the truth for serving; the store keeps what was recorded when they were added (digests).
 * An image has a build line per architecture (`images/<name>@arm64/…`, state-dir.ts), each with its
 * own versions and `current`; every operation here takes the arch, x86_64 when not given.
 */

export const IMAGE_FILE_ROLES = ["kernel", "initrd"] as const;
export type ImageFileRole = (typeof IMAGE_FILE_ROLES)[number];

export interface AddImageOptions {
  stateDir: string;
  store: Store;
  name: string;
  /** The build's architecture (default x86_64): the machines of that `${buildarch}` boot it. */
  arch?: ImageArch;
  files: Record<ImageFileRole, string>;
  version?: string;
  cmdline?: string;
  /** Called as bytes are copied, for a progress bar. */
  onProgress?: (copied: number, total: number) => void;
  now?: () => Date;
}

export interface ImageSummary extends ImageVersionRecord {
  current: boolean;
}

function checkName(kind: "image name" | "version", value: string): void {
  if (!(kind === "image name" ? isImageName(value) : isVersionName(value))) {
    throw new CentraError(
      "IMAGE_NAME",
      `${kind} ${JSON.stringify(value)} is not valid: ${kind === "version" ? VERSION_RULE : NAME_RULE}`,
    );
  }
}

/** A version string from the clock, sortable: 20261125T203300. */
function versionFromClock(now: Date): string {
  return now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
}

/**
 * Copy an image version in: files go to a hidden temporary directory, are flushed to disk, and the
 * directory is renamed into place, so a reader never sees half an image. The first version of an
 * image becomes `current`.
 */
export async function addImage(options: AddImageOptions): Promise<ImageVersionRecord> {
  const version = options.version ?? versionFromClock(options.now?.() ?? new Date());
  checkName("image name", options.name);
  checkName("version", version);
  const arch = options.arch ?? DEFAULT_IMAGE_ARCH;
  const imageDir = imageDirOf(options.stateDir, options.name, arch);
  const finalDir = imageVersionDir(options.stateDir, options.name, version, arch);
  if (await exists(finalDir)) {
    throw new CentraError(
      "IMAGE_EXISTS",
      `image ${describeBuild(options.name, arch)} version ${version} already exists; add it under a new --version, or remove it first`,
    );
  }
  const sizes: Record<string, number> = {};
  for (const role of IMAGE_FILE_ROLES) {
    const source = options.files[role];
    const s = await stat(source).catch(() => undefined);
    if (!s?.isFile()) throw new CentraError("IMAGE_SOURCE", `--${role} ${source}: not a readable file`);
    sizes[role] = s.size;
  }
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);

  await mkdir(imageDir, { recursive: true });
  const tempDir = join(imageDir, `.incoming-${randomBytes(6).toString("hex")}`);
  await mkdir(tempDir);
  const files: Record<string, ImageFileRecord> = {};
  try {
    let copied = 0;
    for (const role of IMAGE_FILE_ROLES) {
      const sha256 = await copyWithDigest(options.files[role], join(tempDir, role), (n) => {
        copied += n;
        options.onProgress?.(copied, total);
      });
      files[role] = { size: sizes[role]!, sha256 };
    }
    await fsyncPath(tempDir);
    await rename(tempDir, finalDir);
    await fsyncPath(imageDir);
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  }
  const record: ImageVersionRecord = {
    name: options.name,
    arch,
    version,
    files,
    cmdline: options.cmdline ?? "",
    addedAt: (options.now?.() ?? new Date()).toISOString(),
  };
  await options.store.images.put(record);
  if ((await currentVersion(options.stateDir, options.name, arch)) === undefined) {
    await useImage(options.stateDir, options.name, version, arch);
  }
  return record;
}

/** `debian` for the x86_64 build, `debian (arm64)` for another: how messages name a build line. */
export function describeBuild(name: string, arch: ImageArch): string {
  return arch === DEFAULT_IMAGE_ARCH ? name : `${name} (${arch})`;
}

/** Switch `current` atomically: a new symlink renamed over the old one (rename(2) is atomic). */
export async function useImage(
  stateDir: string,
  name: string,
  version: string,
  arch: ImageArch = DEFAULT_IMAGE_ARCH,
): Promise<void> {
  checkName("image name", name);
  checkName("version", version);
  const imageDir = imageDirOf(stateDir, name, arch);
  if (!(await exists(imageVersionDir(stateDir, name, version, arch))))
    throw new NotFoundError(`image ${describeBuild(name, arch)} version ${version}`);
  const temp = join(imageDir, `.current-${randomBytes(6).toString("hex")}`);
  await symlink(version, temp);
  await rename(temp, join(imageDir, CURRENT_LINK));
  await fsyncPath(imageDir);
}

/** Every version of every architecture (or of one image), each with whether it is its build line's `current`. */
export async function listImages(stateDir: string, store: Store, name?: string): Promise<ImageSummary[]> {
  const records = await store.images.list(name);
  const currents = new Map<string, string | undefined>();
  for (const r of records) {
    const key = imageTree(r.name, r.arch);
    if (!currents.has(key)) currents.set(key, await currentVersion(stateDir, r.name, r.arch));
  }
  return records.map((r) => ({ ...r, current: currents.get(imageTree(r.name, r.arch)) === r.version }));
}

/** Remove a version; the current one is refused, so a serving image never disappears under a boot. */
export async function removeImage(
  stateDir: string,
  store: Store,
  name: string,
  version: string,
  arch: ImageArch = DEFAULT_IMAGE_ARCH,
): Promise<void> {
  checkName("image name", name);
  checkName("version", version);
  const archFlag = arch === DEFAULT_IMAGE_ARCH ? "" : ` --arch ${arch}`;
  if ((await currentVersion(stateDir, name, arch)) === version) {
    throw new CentraError(
      "IMAGE_CURRENT",
      `image ${describeBuild(name, arch)} version ${version} is current; switch with \`images use ${name} <other-version>${archFlag}\` before removing it`,
    );
  }
  const dir = imageVersionDir(stateDir, name, version, arch);
  const onDisk = await exists(dir);
  const recorded = await store.images.remove(name, version, arch);
  if (!onDisk && !recorded) throw new NotFoundError(`image ${describeBuild(name, arch)} version ${version}`);
  // Rename first so the version vanishes at once, then delete at leisure.
  if (onDisk) {
    const doomed = join(imageDirOf(stateDir, name, arch), `.removing-${randomBytes(6).toString("hex")}`);
    await rename(dir, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
}

async function copyWithDigest(source: string, target: string, onBytes: (n: number) => void): Promise<string> {
  return writeWithDigest(createReadStream(source, { highWaterMark: 1 << 20 }), target, onBytes);
}

/** Write `source` to a new file `target`, flushed to disk; returns its hex sha256. */
export async function writeWithDigest(
  source: NodeJS.ReadableStream,
  target: string,
  onBytes: (n: number) => void = () => undefined,
): Promise<string> {
  const hash = createHash("sha256");
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  await pipeline(source, tap, createWriteStream(target, { flags: "wx" }));
  await fsyncPath(target);
  return hash.digest("hex");
}

export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
