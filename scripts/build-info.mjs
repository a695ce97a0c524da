#!/usr/bin/env node
// Run by `npm run build` after tsc: records the commit dist/ was built from (for `centra-pxe version`)
// and writes the man page generated from the command definitions to dist/centra-pxe.1.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";

let commit = null;
try {
  commit = execFileSync("git", ["rev-parse", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
} catch {
  // a tarball without .git: version says "commit unknown"
}
writeFileSync("dist/build-info.json", `${JSON.stringify({ commit, builtAt: new Date().toISOString() })}\n`);
writeFileSync("dist/centra-pxe.1", execFileSync(process.execPath, ["dist/cli/main.js", "man"], { encoding: "utf8" }));
