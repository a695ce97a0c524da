/**
 * A writer for the cpio "newc" format (SVR4 with no CRC), the only archive format the Linux kernel
 * unpacks as an initramfs (Documentation/driver-api/early-userspace/buffer-format.rst). Written here
 * so building the lab image needs no `cpio` binary: plain data in, bytes out.
 */

export type CpioEntry =
  | { kind: "file"; path: string; data: Uint8Array; mode?: number }
  | { kind: "directory"; path: string; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "char-device"; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** Every field of a newc header is eight ASCII hex digits. */
function hex8(value: number): string {
  return (value >>> 0).toString(16).padStart(8, "0");
}

/** The name and the data are each padded so the next part starts on a 4-byte boundary. */
function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function header(ino: number, mode: number, fileSize: number, nameSize: number, rdevMajor = 0, rdevMinor = 0): string {
  return (
    "070701" +
    hex8(ino) +
    hex8(mode) +
    hex8(0) + // uid: root
    hex8(0) + // gid: root
    hex8(1) + // nlink
    hex8(0) + // mtime: fixed, so the same inputs give the same bytes
    hex8(fileSize) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(rdevMajor) +
    hex8(rdevMinor) +
    hex8(nameSize) +
    hex8(0) // check: unused in newc
  );
}

/** Encode entries, in order (parents before children), followed by the `TRAILER!!!` record. */
export function encodeCpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const push = (b: Buffer) => parts.push(b);
  const record = (ino: number, mode: number, name: string, data: Uint8Array, rdev: [number, number] = [0, 0]) => {
    // The kernel requires paths without a leading slash; the name is NUL-terminated.
    const nameBytes = Buffer.from(`${name.replace(/^\/+/, "")}\0`, "utf8");
    const head = Buffer.from(header(ino, mode, data.length, nameBytes.length, rdev[0], rdev[1]), "ascii");
    push(head);
    push(nameBytes);
    push(Buffer.alloc(pad4(head.length + nameBytes.length)));
    push(Buffer.from(data));
    push(Buffer.alloc(pad4(data.length)));
  };
  let ino = 1;
  for (const entry of entries) {
    switch (entry.kind) {
      case "directory":
        record(ino++, S_IFDIR | (entry.mode ?? 0o755), entry.path, new Uint8Array());
        break;
      case "file":
        record(ino++, S_IFREG | (entry.mode ?? 0o644), entry.path, entry.data);
        break;
      case "symlink":
        record(ino++, S_IFLNK | 0o777, entry.path, Buffer.from(entry.target, "utf8"));
        break;
      case "char-device":
        record(ino++, S_IFCHR | (entry.mode ?? 0o600), entry.path, new Uint8Array(), [entry.major, entry.minor]);
        break;
    }
  }
  record(0, 0, "TRAILER!!!", new Uint8Array());
  return Buffer.concat(parts);
}
