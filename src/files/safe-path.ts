import { realpathSync, statSync, type Stats } from "node:fs";
import { sep } from "node:path";
import { PathEscapeError, NotFoundError } from "../errors.js";

/**
 * Lexical checks on a requested name, before it touches the filesystem. A request is a
 * root-relative path of plain segments: no `..`, `.`, empty segments beyond a single trailing or
 * leading `/`... no NUL, no backslash (Windows-built firmware sends `\` as a separator, and
 * accepting it would let `..\..` past a `/`-only check), no `%` (a caller that decodes URLs has
 * done so already; a second decoding is how `%2e%2e` slips through).
 */
export function checkRequestedName(requested: string, options: { allowLeadingSlash?: boolean } = {}): string[] {
  if (requested.length === 0 || requested.length > 1024) throw new PathEscapeError(requested);
  if (/[\0\\%]/.test(requested)) throw new PathEscapeError(requested);
  // Control characters have no place in a file name that firmware asks for.
  if (/[\x00-\x1f\x7f]/.test(requested)) throw new PathEscapeError(requested);
  let name = requested;
  if (name.startsWith("/")) {
    if (!options.allowLeadingSlash) throw new PathEscapeError(requested);
    name = name.slice(1);
  }
  const segments = name.split("/");
  for (const segment of segments) {
    if (segment === "" || segment === "." || segment === "..") throw new PathEscapeError(requested);
  }
  return segments;
}

export interface ResolvedFile {
  /** The real path of the file, inside the root. */
  path: string;
  stats: Stats;
}

/**
 * Resolve `requested` inside `root`, following symlinks only while they stay inside the root's
 * real path. Throws PathEscapeError for an escape and NotFoundError for a missing or non-regular file.
 *
 * The metadata calls are synchronous on purpose: each is a few microseconds on a served directory
 * that is in the page cache, while each asynchronous one is a round trip through libuv's thread
 * pool, two thread wake-ups that cost more than the call. Three of them made a TFTP request wait
 * ~0.3 ms for its first datagram, longer than tftpd-hpa's fork. (nginx also stats in its event
 * loop.) Reading the file's bytes stays asynchronous.
 */
export async function resolveInside(
  root: string,
  requested: string,
  options: { allowLeadingSlash?: boolean } = {},
): Promise<ResolvedFile> {
  const segments = checkRequestedName(requested, options);
  let realRoot: string;
  try {
    realRoot = realpathSync.native(root);
  } catch {
    throw new NotFoundError(`root ${root}`);
  }
  let real: string;
  try {
    real = realpathSync.native(realRoot + sep + segments.join(sep));
  } catch {
    throw new NotFoundError(requested);
  }
  if (real !== realRoot && !real.startsWith(realRoot + sep)) throw new PathEscapeError(requested);
  const stats = statSync(real);
  if (!stats.isFile()) throw new NotFoundError(requested);
  return { path: real, stats };
}
