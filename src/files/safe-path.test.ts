import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveInside } from "./safe-path.js";
import { NotFoundError, PathEscapeError } from "../errors.js";

const base = mkdtempSync(join(tmpdir(), "safe-path-"));
const root = join(base, "root");
mkdirSync(join(root, "sub"), { recursive: true });
writeFileSync(join(root, "sub", "file"), "inside");
writeFileSync(join(base, "secret"), "outside");
symlinkSync(join(base, "secret"), join(root, "out-link"));
symlinkSync("sub/file", join(root, "in-link"));

test("a plain name inside the root resolves", async () => {
  const r = await resolveInside(root, "sub/file");
  assert.equal(r.stats.size, 6);
});

test("a symlink that stays inside resolves", async () => {
  const r = await resolveInside(root, "in-link");
  assert.ok(r.path.endsWith(join("sub", "file")));
});

for (const bad of [
  "../secret",
  "sub/../../secret",
  "/etc/passwd",
  "sub\\..\\..\\secret",
  "%2e%2e/secret",
  "sub/%2F..",
  "sub/file\0",
  "out-link",
  "./sub/file",
  "sub//file",
  "",
]) {
  test(`refuses ${JSON.stringify(bad)}`, async () => {
    await assert.rejects(resolveInside(root, bad), PathEscapeError);
  });
}

test("a leading slash is root-relative only where the protocol allows it", async () => {
  const r = await resolveInside(root, "/sub/file", { allowLeadingSlash: true });
  assert.equal(r.stats.size, 6);
});

test("a missing file or a directory is not found, not an escape", async () => {
  await assert.rejects(resolveInside(root, "nope"), NotFoundError);
  await assert.rejects(resolveInside(root, "sub"), NotFoundError);
});

test("a leading slash is stripped once, and every escape after it is still refused", async () => {
  const allow = { allowLeadingSlash: true };
  for (const bad of [
    "//etc/passwd",
    "/../secret",
    "/sub/../../secret",
    "/./sub/file",
    "/out-link",
    "/sub/file\0",
    "/..\\secret",
    "/\\..\\secret",
    "/%2e%2e/secret",
    "/",
    "//",
  ]) {
    await assert.rejects(resolveInside(root, bad, allow), PathEscapeError, JSON.stringify(bad));
  }
  // An absolute host path becomes a name inside the root: not there, and nothing outside is read.
  await assert.rejects(resolveInside(root, join(base, "secret"), allow), NotFoundError);
  assert.ok((await resolveInside(root, "/in-link", allow)).path.endsWith(join("sub", "file")));
});
