import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  bootloaderDir,
  currentVersion,
  databaseFile,
  hasImageVersion,
  imageArchOf,
  imageTree,
  parseImageTree,
  imageVersionDir,
  isImageName,
  isVersionName,
  VERSION_RULE,
  stateDirProblem,
} from "./state-dir.js";

test("the layout of PRODUCT.md §4", () => {
  assert.equal(bootloaderDir("/s"), "/s/ipxe");
  assert.equal(imageVersionDir("/s", "nixos", "24.11"), "/s/images/nixos/24.11");
  assert.equal(databaseFile("/s"), "/s/centra-pxe.db");
});

test("one name rule for images and versions: a plain segment of at most 64, never current", () => {
  for (const good of ["nixos", "24.11", "lab-6.1.0_amd64", "a".repeat(64)]) {
    assert.ok(isImageName(good) && isVersionName(good), good);
  }
  for (const bad of ["", "current", ".hidden", "..", "a/b", "a b", "-x", "a".repeat(65), ".incoming-abc"]) {
    assert.ok(!isImageName(bad) && !isVersionName(bad), JSON.stringify(bad));
  }
});

test("latest is reserved as a version name (it means current in /boot/nixos/latest/), not as an image name", () => {
  assert.equal(isVersionName("latest"), false);
  assert.equal(isImageName("latest"), true);
  assert.match(VERSION_RULE, /not "latest" \(\/boot\/nixos\/latest\/ means current\)/);
});

test("currentVersion: the version `current` points at, only when it exists", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "state-dir-"));
  mkdirSync(imageVersionDir(stateDir, "nixos", "24.11"), { recursive: true });
  assert.equal(await currentVersion(stateDir, "nixos"), undefined, "no link yet");
  symlinkSync("24.11", join(stateDir, "images", "nixos", "current"));
  assert.equal(await currentVersion(stateDir, "nixos"), "24.11");
  assert.ok(await hasImageVersion(stateDir, "nixos", "24.11"));

  // A link to a version that is gone is no current version (addImage then makes the new one current).
  mkdirSync(join(stateDir, "images", "gone"), { recursive: true });
  symlinkSync("1", join(stateDir, "images", "gone", "current"));
  assert.equal(await currentVersion(stateDir, "gone"), undefined);

  // An absolute target counts only by its last segment, a version of this same image.
  mkdirSync(imageVersionDir(stateDir, "abs", "2"), { recursive: true });
  symlinkSync(imageVersionDir(stateDir, "abs", "2"), join(stateDir, "images", "abs", "current"));
  assert.equal(await currentVersion(stateDir, "abs"), "2");

  assert.equal(
    await currentVersion(stateDir, "../images/nixos"),
    undefined,
    "a name that breaks the rule is never looked up",
  );
});

test("stateDirProblem names the path: missing, a file, no database; undefined for an initialised one", async () => {
  const root = mkdtempSync(join(tmpdir(), "state-"));
  assert.match(
    (await stateDirProblem(join(root, "stat")))!,
    /^no state directory at .*\/stat \(run `centra-pxe init` first/,
  );
  assert.match((await stateDirProblem("/etc/hostname"))!, /^\/etc\/hostname: not a directory/);
  assert.match((await stateDirProblem("/etc/hostname/x"))!, /^\/etc\/hostname\/x: not a directory/);
  assert.match((await stateDirProblem(root))!, /^no database at .*centra-pxe\.db/);
  writeFileSync(databaseFile(root), "");
  assert.equal(await stateDirProblem(root), undefined);
});

test("image architectures: the machine's buildarch picks the build line; x86_64 keeps the old layout", () => {
  assert.equal(imageArchOf("arm64"), "arm64");
  assert.equal(imageArchOf("x86_64"), "x86_64");
  assert.equal(imageArchOf("i386"), "x86_64", "BIOS iPXE (undionly.kpxe) is i386 on any x86 CPU");
  assert.equal(imageArchOf(undefined), "x86_64");
  assert.equal(imageArchOf("riscv64"), undefined);
  assert.equal(imageTree("debian", "x86_64"), "debian");
  assert.equal(imageTree("debian", "arm64"), "debian@arm64");
  assert.deepEqual(parseImageTree("debian@arm64"), { name: "debian", arch: "arm64" });
  assert.deepEqual(parseImageTree("debian"), { name: "debian", arch: "x86_64" });
  for (const bad of ["debian@x86_64", "debian@riscv64", "@arm64", "../x@arm64", "debian@arm64@arm64"])
    assert.equal(parseImageTree(bad), undefined, bad);
  assert.equal(imageVersionDir("/s", "debian", "1", "arm64"), "/s/images/debian@arm64/1");
});
