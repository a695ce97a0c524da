#!/usr/bin/env node
// Builds the native addons (binding.gyp: native/*.c) with node-gyp against the headers of the Node that
// runs this script, never downloaded ones: $npm_config_nodedir when set, else the include/node beside
// this node (/usr for Debian's and NodeSource's nodejs, the prefix of an official tarball). It is both
// `npm run build:native` in a checkout and the package's `install` script, so `npm install -g
// centra-pxe-*.tgz` compiles them for the Node it installs into. node-gyp is npm's own (npm sets
// $npm_config_node_gyp for every script it runs).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

const candidates = [process.env.npm_config_nodedir, join(dirname(process.execPath), "..")];
const nodedir = candidates.find((dir) => dir && existsSync(join(dir, "include/node/node_api.h")));
if (!nodedir) {
  process.stderr.write(
    "build-native: no Node headers beside this node; node-gyp will fetch them (set npm_config_nodedir to avoid it)\n",
  );
}
const args = ["rebuild", ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const gyp = process.env.npm_config_node_gyp;
const result = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { stdio: "inherit" })
  : spawnSync("node-gyp", args, { stdio: "inherit" });
if (result.error) process.stderr.write(`build-native: ${result.error.message}\n`);
process.exit(result.status ?? 1);
