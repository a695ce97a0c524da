import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { lockCache } from "./build.js";

test("one build at a time per cache: a second waits for the first's release", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "ipxe-lock-"));
  try {
    const releaseFirst = await lockCache(cacheDir, undefined);
    const waits: string[] = [];
    let secondHeld = false;
    const second = lockCache(cacheDir, (line) => waits.push(line)).then((release) => {
      secondHeld = true;
      return release;
    });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(secondHeld, false, "the second build waits while the first holds the cache");
    assert.match(waits[0] ?? "", new RegExp(`waiting for another iPXE build .*pid ${process.pid}`));
    await releaseFirst();
    const releaseSecond = await second;
    assert.equal(secondHeld, true);
    await releaseSecond();
    assert.equal(existsSync(join(cacheDir, "build.lock")), false, "released: no lock left");
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test("a lock left by a build that died is taken over", async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), "ipxe-lock-"));
  try {
    // A PID that existed and is gone: a child that has exited.
    const dead = spawnSync("true").pid;
    writeFileSync(join(cacheDir, "build.lock"), String(dead));
    const release = await lockCache(cacheDir, () => assert.fail("no wait for a dead holder"));
    await release();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
