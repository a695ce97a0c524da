import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { repo } from "../support/daemon.js";
import { requireBinaries } from "../support/netns.js";

/**
 * The boot-storm benchmark (bench/storm) must not rot: 20 machines, tiny files, one server on
 * SQLite, through the whole firmware walk (DORA with 93, TFTP, DORA with 77 iPXE, scripts, kernel,
 * initrd). The figures are not judged here; the harness working and every machine booting are.
 */
test("bench/storm boots 20 machines from one server on SQLite with no failure", (t) => {
  if (!requireBinaries(t, "ip", "ss")) return;
  const run = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      join(repo, "bench/storm/storm.ts"),
      ...["--machines", "20", "--window", "3", "--kernel-mb", "0.25", "--initrd-mb", "0.5"],
      ...["--setups", "sqlite", "--deadline", "60"],
    ],
    { cwd: repo, encoding: "utf8", timeout: 150_000 },
  );
  const output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, output);
  const row = /^ours, SQLite\s+(\d+)\s+([\d.]+)\s+([\d.]+)/m.exec(run.stdout);
  assert.ok(row, `no SQLite row in:\n${output}`);
  assert.equal(row[1], "0", output);
});
