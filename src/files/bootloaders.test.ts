import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SIGNED_LOADERS, checkBootloader, readBootloaders, writeBootloaders } from "./bootloaders.js";

/** What `init` does: nothing is written unless every file checks out. */
const installBootloaders = async (source: string, target: string) =>
  writeBootloaders(await readBootloaders(source), target);

function fakeEfi(): Buffer {
  const b = Buffer.alloc(4096);
  b.write("MZ", 0, "latin1");
  b.writeUInt32LE(0x80, 0x3c);
  b.write("PE\0\0", 0x80, "latin1");
  return b;
}

test("EFI images need MZ and a PE signature; PXE images need a real size", () => {
  assert.equal(checkBootloader("efi", fakeEfi()), undefined);
  assert.match(checkBootloader("efi", Buffer.alloc(4096))!, /MZ/);
  assert.match(checkBootloader("pxe", Buffer.alloc(10))!, /too small/);
  assert.match(checkBootloader("pxe", Buffer.from("<!DOCTYPE html>".padEnd(2000)))!, /HTML/);
  // An option ROM starts with 55 AA.
  assert.equal(checkBootloader("rom", Buffer.concat([Buffer.from([0x55, 0xaa]), Buffer.alloc(4094)])), undefined);
  assert.match(checkBootloader("rom", fakeEfi())!, /55 AA/);
});

test("install copies what is present, is idempotent, and names a missing required loader", async () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-"));
  const source = join(dir, "src");
  mkdirSync(source);
  writeFileSync(join(source, "undionly.kpxe"), Buffer.alloc(70_000, 1));
  writeFileSync(join(source, "ipxe.efi"), fakeEfi());
  const target = join(dir, "ipxe");
  const first = await installBootloaders(source, target);
  assert.deepEqual(first.installed.sort(), ["ipxe.efi", "undionly.kpxe"]);
  const mtime = statSync(join(target, "ipxe.efi")).mtimeMs;
  const second = await installBootloaders(source, target);
  assert.deepEqual(second.installed, []);
  assert.deepEqual(second.unchanged.sort(), ["ipxe.efi", "undionly.kpxe"]);
  assert.equal(statSync(join(target, "ipxe.efi")).mtimeMs, mtime);
  assert.deepEqual(readdirSync(target).sort(), ["ipxe.efi", "undionly.kpxe"]);

  const empty = join(dir, "empty");
  mkdirSync(empty);
  await assert.rejects(installBootloaders(empty, join(dir, "other")), /undionly\.kpxe: missing/);
});

test("the system's iPXE package installs cleanly when present", {
  skip: !existsSync("/usr/lib/ipxe/undionly.kpxe") && "no /usr/lib/ipxe",
}, async () => {
  const target = join(mkdtempSync(join(tmpdir(), "loaders-")), "ipxe");
  const report = await installBootloaders("/usr/lib/ipxe", target);
  assert.ok(report.installed.includes("undionly.kpxe") && report.installed.includes("ipxe.efi"));
});

test("Secure Boot's signed loaders are installed under the names shim and the DHCP table use, when present", async () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-"));
  const source = join(dir, "src");
  mkdirSync(source);
  writeFileSync(join(source, "undionly.kpxe"), Buffer.alloc(2048, 1));
  writeFileSync(join(source, "ipxe.efi"), fakeEfi());
  writeFileSync(join(dir, "shimx64.efi.signed"), fakeEfi());
  writeFileSync(join(dir, "grubnetx64.efi.signed"), fakeEfi());
  const signed = [
    { name: "shimx64.efi", from: join(dir, "shimx64.efi.signed") },
    { name: "grubx64.efi", from: join(dir, "grubnetx64.efi.signed") },
    { name: "shimaa64.efi", from: join(dir, "not-installed.efi.signed") },
  ];
  const report = await writeBootloaders(await readBootloaders(source, signed), join(dir, "out"));
  assert.deepEqual(report.installed.sort(), ["grubx64.efi", "ipxe.efi", "shimx64.efi", "undionly.kpxe"]);
  // A file that is there but is no EFI image fails init, as for iPXE.
  writeFileSync(join(dir, "grubnetx64.efi.signed"), "<!DOCTYPE html>".padEnd(4096));
  await assert.rejects(readBootloaders(source, signed), /grubnetx64\.efi\.signed: is not a PE\/EFI image/);
  // Debian's paths, as `init` reads them.
  assert.deepEqual(SIGNED_LOADERS.map((l) => `${l.name} ${l.from}`).slice(0, 2), [
    "shimx64.efi /usr/lib/shim/shimx64.efi.signed",
    "grubx64.efi /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
  ]);
});
