#!/usr/bin/env node
// The web dashboard (ui/, Preact) bundled by esbuild into dist/ui/ (or the directory given as the
// first argument: tests build their own copy): index.html naming content-hashed assets/app-HASH.js
// and .css, so the daemon can cache them forever and revalidate only index.html. Everything the page
// runs is in the bundle; nothing is fetched from anywhere but the daemon at run time.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Bundle ui/ into `outDir` (emptied first); returns the names of the files written. */
export async function buildDashboard(outDir = join(repo, "dist/ui")) {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(join(outDir, "assets"), { recursive: true });
  const result = await build({
    entryPoints: { app: join(repo, "ui/main.tsx") },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["chrome110", "firefox110", "safari16"],
    jsx: "automatic",
    jsxImportSource: "preact",
    outdir: join(outDir, "assets"),
    entryNames: "[name]-[hash]",
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
    absWorkingDir: repo,
  });
  const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
  const script = outputs.find((name) => name.endsWith(".js"));
  const style = outputs.find((name) => name.endsWith(".css"));
  if (!script || !style) throw new Error(`the UI build wrote ${outputs.join(", ")}: expected one .js and one .css`);
  const html = readFileSync(join(repo, "ui/index.html"), "utf8")
    .replace("%SCRIPT%", `assets/${script}`)
    .replace("%STYLE%", `assets/${style}`);
  writeFileSync(join(outDir, "index.html"), html);
  return ["index.html", `assets/${script}`, `assets/${style}`];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ? resolve(process.argv[2]) : undefined;
  const files = await buildDashboard(out);
  process.stdout.write(`dashboard: ${files.join(", ")} in ${out ?? join(repo, "dist/ui")}\n`);
}
