#!/usr/bin/env node
// The import rules of docs/LAYOUT.md, checked over src/:
//  1. layers: a folder imports from itself and from folders in lower layers, never from a higher
//     layer nor from a sibling in its own layer;
//  2. shipping: no file that ships (src/**/*.ts but *.test.ts) imports node:test;
//  3. no file under src/ (tests included) imports from test/ or bench/.
// Exit status 1 lists every violation as FILE:LINE. To change the architecture, edit LAYERS (and
// docs/LAYOUT.md with it); to live with a known violation for a while, add it to ALLOWED with why.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Top to bottom. "(root)" is the files directly in src/ (errors.ts, log.ts). */
export const LAYERS = [
  ["cli"],
  ["server", "doctor", "lab", "migrate"],
  ["api", "metrics"],
  ["identity"],
  ["provisioning"],
  ["http", "dhcp", "tftp"],
  ["boot"],
  ["images"],
  ["store"],
  ["lifecycle"],
  ["contracts"],
  ["config"],
  ["files", "native"],
  ["(root)"],
];

/**
 * Known violations, as "from-folder -> to-folder": each one is a piece of issue 11 still open.
 * Remove an entry once its import is gone; the check then keeps it gone.
 */
export const ALLOWED = new Map([]);

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(repo, "src");

const layerOf = new Map(LAYERS.flatMap((folders, index) => folders.map((folder) => [folder, index])));

function sourceFiles(dir) {
  const files = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith(".ts")) files.push(path);
  }
  return files;
}

/** `src/<folder>/…` → folder; `src/x.ts` → "(root)"; outside src → undefined. */
function folderOf(file) {
  const rel = relative(src, file);
  if (rel.startsWith("..")) return undefined;
  const parts = rel.split(sep);
  return parts.length === 1 ? "(root)" : parts[0];
}

// Static imports and re-exports (`import … from "x"`, `export … from "x"`, `import "x"`) and
// dynamic `import("x")`; type-only imports count, a type is a dependency too.
const IMPORT = /(?:^|[\s;])(?:import|export)\s(?:[^"';]*?\sfrom\s)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

export function check() {
  const problems = [];
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, "utf8");
    const from = folderOf(file);
    const isTest = file.endsWith(".test.ts");
    const where = (index) => `${relative(repo, file)}:${text.slice(0, index).split("\n").length}`;
    if (!layerOf.has(from))
      problems.push(
        `${relative(repo, file)}: folder src/${from} is in no layer; add it to LAYERS in scripts/check-layers.mjs and to docs/LAYOUT.md`,
      );
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2];
      const at = where(match.index + match[0].indexOf(specifier));
      if (specifier === "node:test" && !isTest) {
        problems.push(`${at}: imports node:test, but this file ships in dist/ (test helpers live in test/)`);
        continue;
      }
      if (!specifier.startsWith(".")) continue;
      const target = resolve(dirname(file), specifier);
      const to = folderOf(target);
      if (to === undefined) {
        problems.push(`${at}: imports ${specifier} from outside src/ (src/ never imports from test/ or bench/)`);
        continue;
      }
      if (to === from || !layerOf.has(to) || !layerOf.has(from)) continue;
      const edge = `${from} -> ${to}`;
      if (ALLOWED.has(edge)) continue;
      if (layerOf.get(to) < layerOf.get(from))
        problems.push(`${at}: ${edge} runs upward, ${from} sits below ${to} in LAYERS: ${specifier}`);
      else if (layerOf.get(to) === layerOf.get(from))
        problems.push(`${at}: ${edge} imports a sibling in its own layer: ${specifier}`);
    }
  }
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const problems = check();
  for (const p of problems) process.stderr.write(`${p}\n`);
  if (problems.length) {
    process.stderr.write(
      `check-layers: ${problems.length} problem${problems.length === 1 ? "" : "s"} (rules: docs/LAYOUT.md)\n`,
    );
    process.exit(1);
  }
  process.stdout.write(`check-layers: ${LAYERS.length} layers, imports point down, nothing ships node:test\n`);
}
