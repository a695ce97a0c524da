#!/usr/bin/env node
// Runs every *.test.ts under the given folders (default: src and test) with node:test and tsx.
// Node 20's `--test` does not expand globs, so the files are listed here.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

const roots = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const flags = process.argv.slice(2).filter((a) => a.startsWith("-"));
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith(".test.ts")) files.push(path);
  }
}
for (const root of roots.length ? roots : ["src", "test"]) walk(root);
files.sort();
// A test that hangs fails after ten minutes instead of eating CI's whole budget.
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", "--test-timeout=600000", ...flags, ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
