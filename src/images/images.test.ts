import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openSqliteStore } from "../store/sqlite-store.js";
import { addImage, listImages, removeImage, useImage } from "./images.js";

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "images-"));
  const stateDir = join(dir, "state");
  writeFileSync(join(dir, "bzImage"), "kernel-bytes");
  writeFileSync(join(dir, "initrd"), "initrd-bytes");
  return {
    dir,
    stateDir,
    store: openSqliteStore(":memory:"),
    files: { kernel: join(dir, "bzImage"), initrd: join(dir, "initrd") },
  };
}

test("adding copies the files, records their sha256, and makes the first version current", async () => {
  const { stateDir, store, files } = setup();
  const record = await addImage({ stateDir, store, name: "nixos", version: "24.05", files });
  assert.equal(readFileSync(join(stateDir, "images/nixos/24.05/kernel"), "utf8"), "kernel-bytes");
  assert.equal(record.files.kernel?.sha256, createHash("sha256").update("kernel-bytes").digest("hex"));
  assert.equal(readlinkSync(join(stateDir, "images/nixos/current")), "24.05");
  await addImage({ stateDir, store, name: "nixos", version: "24.11", files });
  assert.equal(
    readlinkSync(join(stateDir, "images/nixos/current")),
    "24.05",
    "a later version does not switch current by itself",
  );
  const listed = await listImages(stateDir, store);
  assert.deepEqual(
    listed.map((i) => [i.version, i.current]),
    [
      ["24.05", true],
      ["24.11", false],
    ],
  );
  // No temporary leftovers beside the versions.
  assert.deepEqual(readdirSync(join(stateDir, "images/nixos")).sort(), ["24.05", "24.11", "current"]);
});

test("use switches current; the current version cannot be removed; others can", async () => {
  const { stateDir, store, files } = setup();
  await addImage({ stateDir, store, name: "nixos", version: "a", files });
  await addImage({ stateDir, store, name: "nixos", version: "b", files });
  await useImage(stateDir, "nixos", "b");
  assert.equal(readlinkSync(join(stateDir, "images/nixos/current")), "b");
  await assert.rejects(removeImage(stateDir, store, "nixos", "b"), /is current/);
  await removeImage(stateDir, store, "nixos", "a");
  assert.deepEqual(readdirSync(join(stateDir, "images/nixos")).sort(), ["b", "current"]);
  await assert.rejects(useImage(stateDir, "nixos", "a"), /not found/);
});

test("bad names, an existing version and a missing source are refused with a reason", async () => {
  const { stateDir, store, files, dir } = setup();
  await assert.rejects(addImage({ stateDir, store, name: "../x", version: "1", files }), /not valid/);
  await assert.rejects(addImage({ stateDir, store, name: "nixos", version: "current", files }), /not valid/);
  await addImage({ stateDir, store, name: "nixos", version: "1", files });
  await assert.rejects(addImage({ stateDir, store, name: "nixos", version: "1", files }), /already exists/);
  await assert.rejects(
    addImage({ stateDir, store, name: "nixos", version: "2", files: { ...files, initrd: join(dir, "missing") } }),
    /not a readable file/,
  );
});

test("an image's arm64 build has its own versions and current beside the x86_64 one, whose layout is unchanged", async () => {
  const { stateDir, store, files } = setup();
  await addImage({ stateDir, store, name: "debian", version: "12.5", files });
  await addImage({ stateDir, store, name: "debian", version: "12.5", files, arch: "arm64" });
  await addImage({ stateDir, store, name: "debian", version: "12.6", files, arch: "arm64" });
  assert.equal(readlinkSync(join(stateDir, "images/debian/current")), "12.5");
  assert.equal(readlinkSync(join(stateDir, "images/debian@arm64/current")), "12.5");
  await useImage(stateDir, "debian", "12.6", "arm64");
  assert.equal(readlinkSync(join(stateDir, "images/debian@arm64/current")), "12.6");
  await assert.rejects(useImage(stateDir, "debian", "12.6"), /image debian version 12\.6/);
  assert.deepEqual(
    (await listImages(stateDir, store, "debian")).map((i) => `${i.arch} ${i.version} ${i.current}`),
    ["x86_64 12.5 true", "arm64 12.5 false", "arm64 12.6 true"],
  );
  await removeImage(stateDir, store, "debian", "12.5", "arm64");
  assert.deepEqual(readdirSync(join(stateDir, "images/debian@arm64")).sort(), ["12.6", "current"]);
  assert.deepEqual(readdirSync(join(stateDir, "images/debian")).sort(), ["12.5", "current"]);
  await assert.rejects(removeImage(stateDir, store, "debian", "12.6", "arm64"), /--arch arm64/);
});
