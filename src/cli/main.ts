#!/usr/bin/env node
// The daemon holds its signals before anything else loads: a SIGHUP or SIGTERM that comes while the
// modules below are still being read must not kill it (src/server/signals.ts). Only `serve` does,
// so every other command keeps Node's defaults; the command is the first argument, as the CLI has
// no global options but --help and --version.
import { holdDaemonSignals } from "../server/signals.js";

if (process.argv[2] === "serve") holdDaemonSignals();

const { runCli } = await import("./program.js");
const { explainFsError } = await import("./common.js");
try {
  await runCli(process.argv);
} catch (thrown) {
  // A raw `EACCES: permission denied, open '…'` becomes "cannot open …: permission denied; run as …".
  const error = explainFsError(thrown);
  process.stderr.write(`centra-pxe: ${error instanceof Error ? error.message : String(error)}\n`);
  const exitCode = (error as { exitCode?: unknown }).exitCode;
  process.exit(typeof exitCode === "number" ? exitCode : 1);
}
