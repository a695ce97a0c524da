#!/usr/bin/env node
// `npm pack` (prepack): a clean dist/ (no output of a source file since removed), and the lock file
// shipped as npm-shrinkwrap.json, so `npm install -g centra-pxe-*.tgz` installs the dependency
// versions CI tested rather than whatever their ranges resolve to that day. postpack removes it.
import { copyFileSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
copyFileSync("package-lock.json", "npm-shrinkwrap.json");
