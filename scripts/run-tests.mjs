#!/usr/bin/env node
// Runs every *.test.ts under the given folders (default: src and test) with node:test and tsx.
// Node 20's `--test` does not expand globs, so the files are listed here.
//
// Two lanes run at once, each its own `node --test` process: the virtual-machine lane (files that
// boot QEMU or compile firmware: minutes each, mostly waiting on emulation) and everything else.
// A file joins the VM lane by living in test/e2e/, by a name ending in `-qemu.test.ts`, or by the
// line `// test-lane: vm` near its top. VM files run CENTRA_TEST_VM_CONCURRENCY (default 2) at a
// time, the rest CENTRA_TEST_MAIN_CONCURRENCY (default 2): every file makes its own namespaces,
// ports and directories, so files do not meet; timing assertions keep margins for a loaded box.
import { spawn } from "node:child_process";
import { openSync, readSync, closeSync, readdirSync, statSync } from "node:fs";
import { join, sep } from "node:path";

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

function head(path) {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.alloc(2048);
    return buffer.toString("utf8", 0, readSync(fd, buffer, 0, buffer.length, 0));
  } finally {
    closeSync(fd);
  }
}
function isVmFile(path) {
  return (
    path.includes(`test${sep}e2e${sep}`) || path.endsWith("-qemu.test.ts") || /^\/\/ test-lane: vm$/m.test(head(path))
  );
}

const vmConcurrency = Number(process.env.CENTRA_TEST_VM_CONCURRENCY ?? 2);
const mainConcurrency = Number(process.env.CENTRA_TEST_MAIN_CONCURRENCY ?? 2);
const lanes = [
  { name: "vm", files: files.filter(isVmFile), concurrency: vmConcurrency, prefix: "vm │ " },
  { name: "main", files: files.filter((f) => !isVmFile(f)), concurrency: mainConcurrency, prefix: "" },
].filter((lane) => lane.files.length > 0);

// A test (or a whole file) that hangs fails after twenty minutes instead of eating CI's whole budget.
function runLane(lane) {
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--test",
      "--test-reporter=spec",
      "--test-timeout=1200000",
      `--test-concurrency=${lane.concurrency}`,
      ...flags,
      ...lane.files,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  // Whole lines only, prefixed, so two lanes' output stays readable in one CI log.
  for (const [stream, sink] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    let rest = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      if (lines.length) sink.write(`${lines.map((l) => lane.prefix + l).join("\n")}\n`);
    });
    stream.on("end", () => {
      if (rest) sink.write(`${lane.prefix + rest}\n`);
    });
  }
  return new Promise((resolve) => {
    child.on("close", (code, signal) =>
      resolve({ lane, code: code ?? (signal ? 1 : 0), seconds: (Date.now() - started) / 1000 }),
    );
  });
}

const results = await Promise.all(lanes.map(runLane));
for (const { lane, code, seconds } of results) {
  console.log(`lane ${lane.name}: ${lane.files.length} files, exit ${code}, ${seconds.toFixed(0)} s`);
}
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
