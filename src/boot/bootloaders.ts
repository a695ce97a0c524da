import { readdirSync } from "node:fs";

/** How long a listing of the bootloader directory is trusted: `centra-pxe init` may add files any time. */
const RESCAN_MS = 5_000;

/**
 * The file names in the bootloader directory (`stateDir/ipxe`), read at most every `rescanMs`:
 * the DHCP part asks for each boot answer, and a directory read per DISCOVER would be on its hot
 * path. A missing directory lists as empty (the boot answer then says what to install).
 */
export function cachedBootloaders(
  directory: () => string,
  now: () => number = Date.now,
  rescanMs = RESCAN_MS,
): () => ReadonlySet<string> {
  let installed: ReadonlySet<string> = new Set();
  let readAt = -Infinity;
  let readFrom = "";
  return () => {
    const t = now();
    const dir = directory();
    if (t - readAt > rescanMs || dir !== readFrom) {
      readAt = t;
      readFrom = dir;
      try {
        installed = new Set(readdirSync(dir));
      } catch {
        installed = new Set();
      }
    }
    return installed;
  };
}
