import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** What `centra-pxe version` reports. */
export interface VersionInfo {
  name: string;
  version: string;
  /** The git commit it was built from (dist/build-info.json), or the checkout's HEAD when run from source. */
  commit: string | null;
  node: string;
}

/** package.json is two levels up from both src/cli and dist/cli. */
const PACKAGE_JSON = new URL("../../package.json", import.meta.url);
/** Written by scripts/build-info.mjs into dist/ at `npm run build`; absent when run from source. */
const BUILD_INFO = new URL("../build-info.json", import.meta.url);

function packageJson(): { name: string; version: string } {
  return JSON.parse(readFileSync(PACKAGE_JSON, "utf8")) as { name: string; version: string };
}

/** The package version alone (no git call): what `--version` prints. */
export function packageVersion(): string {
  return packageJson().version;
}

export function versionInfo(): VersionInfo {
  const pkg = packageJson();
  return { name: pkg.name, version: pkg.version, commit: buildCommit(), node: process.version };
}

function buildCommit(): string | null {
  try {
    const info = JSON.parse(readFileSync(BUILD_INFO, "utf8")) as { commit?: unknown };
    if (typeof info.commit === "string") return info.commit;
  } catch {
    /* not a build: ask git below */
  }
  const root = fileURLToPath(new URL("../..", import.meta.url));
  if (!existsSync(`${root}/.git`)) return null;
  try {
    return execFileSync("git", ["-C", root, "rev-parse", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return null;
  }
}
