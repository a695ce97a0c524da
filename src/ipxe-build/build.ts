import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { createInterface } from "node:readline";
import { ENTRY_SCRIPT_PATH, renderEmbeddedScript } from "../boot/ipxe.js";
import { CentraError } from "../errors.js";
import {
  type CheckedBootloaders,
  checkBootloader,
  type InstallReport,
  writeBootloaders,
} from "../files/bootloaders.js";
import { formatProgress, type MakeProgress, startProgress, stepProgress } from "./make-progress.js";
import type { IpxeTarget } from "./targets.js";

/**
 * `centra-pxe ipxe build` (the seed's `setup.sh --build-ipxe`): iPXE compiled from a source tree
 * or tarball with our embedded script (EMBED=) and, for HTTPS, our CA as its only trust anchor
 * (TRUST=). Everything is kept under `cacheDir`:
 *
 * ```
 * cacheDir/trees/<source sha256>/      the unpacked source with make's objects (incremental rebuilds)
 * cacheDir/inputs/<build>/             the embedded script and CA of one build (new paths, new content:
 *                                      iPXE's Makefile rebuilds embedded.o and rootcert.o from them)
 * cacheDir/results/<build>/<name>      the finished bootloaders of one build
 * ```
 *
 * `<build>` is a digest of (source, options, target): the same inputs again find their results
 * and run no compiler at all.
 */

export interface IpxeBuildOptions {
  /** An iPXE source directory (the repository or its `src/`) or a tarball of one. */
  source: string;
  cacheDir: string;
  /**
   * Our server as the machine reaches it, `http(s)://serverAddress[:port]`: the embedded script
   * chains to the machine's script there (`renderEmbeddedScript`).
   */
  origin: string;
  /** PEM of the CA iPXE trusts for https:// (TRUST= and CERT=); absent: iPXE's own default trust. */
  trustedCa?: string;
  targets: readonly IpxeTarget[];
  /** make -j; the CLI passes the CPU count. */
  jobs: number;
  /** Called with each new progress state of a make run (`label` names its targets). */
  onProgress?: (line: string, progress: MakeProgress) => void;
}

export interface BuiltBootloader {
  name: string;
  goal: string;
  sha256: string;
  size: number;
  /** Found in the cache: no compiler ran for it. */
  cached: boolean;
  path: string;
}

export interface IpxeBuildResult {
  source: { path: string; sha256: string };
  /**
   * What went into the build besides the source, as the manifest records it. `entryUrl`: the entry
   * script at `origin`, what a machine whose embedded script failed is told to chain to by hand.
   */
  options: { entryUrl: string; trustedCaSha256: string | null; embeddedScriptSha256: string; localConfig: string };
  files: BuiltBootloader[];
  /** Wall time of the make runs; 0 when everything came from the cache. */
  compileMs: number;
}

/**
 * iPXE's build-time switches beyond its defaults (config/local/general.h, read last by
 * config/general.h). BIOS builds leave HTTPS out "historically"; undionly.kpxe needs it to fetch
 * our scripts over https://.
 */
export const LOCAL_GENERAL_H = [
  "/* Centra PXE (centra-pxe ipxe build): HTTPS in every build, BIOS included. */",
  "#undef DOWNLOAD_PROTO_HTTPS",
  "#define DOWNLOAD_PROTO_HTTPS",
  "",
].join("\n");

/**
 * config/local/entropy.h of a build. iPXE instantiates its DRBG (the random bits of TLS) eagerly at
 * startup (crypto/rbg.c `rbg_startup_fn`), from RDRAND, else the firmware's EFI_RNG_PROTOCOL, else
 * timer jitter: EFI timer ticks (`ENTROPY_EFITICK`) or the BIOS RTC (`ENTROPY_RTC`), sampled for
 * seconds — ~6 s between "iPXE initialising devices" and the banner under OVMF on QEMU's default
 * CPU, which has no RDRAND (bench/boot), and so on any server older than RDRAND. A build whose
 * origin is plain `http://` never uses TLS (every URL our scripts hand it is `http://` too), so it
 * leaves the timer sources out and starts at once; an `https://` build keeps iPXE's defaults.
 */
export function localEntropyH(origin: string): string {
  if (origin.startsWith("https://")) return "/* Centra PXE (centra-pxe ipxe build): iPXE's entropy sources. */\n";
  return [
    "/* Centra PXE (centra-pxe ipxe build), plain-HTTP origin: no TLS, so no seconds of timer sampling at startup. */",
    "#undef ENTROPY_EFITICK",
    "#undef ENTROPY_RTC",
    "",
  ].join("\n");
}

/** Part of every build's cache key: raised when the way a build is made changes (make variables, local config). */
const BUILD_RECIPE = 2;

export async function buildIpxe(options: IpxeBuildOptions): Promise<IpxeBuildResult> {
  const sourceSha256 = await sourceDigest(options.source);
  const embedded = renderEmbeddedScript({ origin: options.origin, build: sourceSha256.slice(0, 12) });
  const optionsRecord = {
    entryUrl: `${options.origin}${ENTRY_SCRIPT_PATH}`,
    trustedCaSha256: options.trustedCa === undefined ? null : sha256(options.trustedCa),
    embeddedScriptSha256: sha256(embedded),
    localConfig: sha256(LOCAL_GENERAL_H + localEntropyH(options.origin)),
  };
  const buildKey = sha256(JSON.stringify({ recipe: BUILD_RECIPE, source: sourceSha256, ...optionsRecord })).slice(
    0,
    20,
  );
  const resultsDir = join(options.cacheDir, "results", buildKey);

  const cached = new Map<string, BuiltBootloader>();
  const toBuild: IpxeTarget[] = [];
  for (const target of options.targets) {
    const found = await readResult(resultsDir, target);
    if (found) cached.set(target.name, found);
    else toBuild.push(target);
  }

  let compileMs = 0;
  // Two builds in one cache share its source tree and make's objects: one at a time (the lab's
  // ARM64 and HTTPS machines build into one cache, from test files that run side by side).
  const release = toBuild.length ? await lockCache(options.cacheDir, options.onProgress) : undefined;
  try {
    // What another build finished while this one waited is not built again.
    for (const target of [...toBuild]) {
      const found = await readResult(resultsDir, target);
      if (!found) continue;
      cached.set(target.name, found);
      toBuild.splice(toBuild.indexOf(target), 1);
    }
    if (toBuild.length) compileMs = await compile();
  } finally {
    await release?.();
  }

  async function compile(): Promise<number> {
    const tree = await unpackedTree(options.source, sourceSha256, options.cacheDir);
    const inputs = join(options.cacheDir, "inputs", buildKey);
    await mkdir(inputs, { recursive: true });
    await writeFile(join(inputs, "embed.ipxe"), embedded);
    if (options.trustedCa !== undefined) await writeFile(join(inputs, "ca.pem"), options.trustedCa);
    await mkdir(join(tree, "config", "local"), { recursive: true });
    await writeIfChanged(join(tree, "config", "local", "general.h"), LOCAL_GENERAL_H);
    // Only the entropy sources' few objects include it: a switch between http and https builds in
    // one cache recompiles those alone.
    await writeIfChanged(join(tree, "config", "local", "entropy.h"), localEntropyH(options.origin));

    const started = Date.now();
    // One make run per cross-compiler: CROSS= applies to the whole run. Cross builds first: the
    // first build in a new bin directory touches config/named.h, which every object of every bin
    // directory depends on, so an ARM64 build after the x86 one would make the next x86 build
    // recompile everything; in this order the x86 objects are made after that touch. (Adding
    // ipxe-arm64.efi to a cache that already has x86 objects still costs one x86 rebuild.)
    const crossFirst = [...new Set(toBuild.map((t) => t.cross ?? ""))].sort(
      (a, b) => Number(b !== "") - Number(a !== ""),
    );
    for (const cross of crossFirst) {
      const group = toBuild.filter((t) => (t.cross ?? "") === cross);
      const args = [
        "-C",
        tree,
        `-j${Math.max(1, options.jobs)}`,
        ...group.map((t) => t.goal),
        `EMBED=${join(inputs, "embed.ipxe")}`,
        // TRUST= puts only the CA's fingerprint in iPXE's list of roots; the certificate itself must
        // reach iPXE too, or it cannot check the server's certificate against it (it fails "Not a
        // CA certificate", ipxe.org/0216eb3c): CERT= embeds it, so the server need not send it.
        ...(options.trustedCa !== undefined
          ? [`TRUST=${join(inputs, "ca.pem")}`, `CERT=${join(inputs, "ca.pem")}`]
          : []),
        ...(cross ? [`CROSS=${cross}`] : []),
      ];
      await runMake(args, group.map((t) => t.name).join(", "), options.onProgress);
    }
    const compiled = Date.now() - started;

    // Results appear whole or not at all: copied to a temporary directory, checked, then renamed
    // into place file by file (a crash leaves a temporary directory, never a half file).
    await mkdir(resultsDir, { recursive: true });
    for (const target of toBuild) {
      const bytes = await readFile(join(tree, target.goal));
      const problem = checkBootloader(target.kind, bytes);
      if (problem) throw new CentraError("IPXE_BUILD", `${join(tree, target.goal)}: ${problem}`);
      const temp = join(resultsDir, `.${target.name}.${randomBytes(4).toString("hex")}`);
      await writeFile(temp, bytes);
      await rename(temp, join(resultsDir, target.name));
      cached.set(target.name, {
        name: target.name,
        goal: target.goal,
        sha256: sha256(bytes),
        size: bytes.length,
        cached: false,
        path: join(resultsDir, target.name),
      });
    }
    return compiled;
  }

  return {
    source: { path: options.source, sha256: sourceSha256 },
    options: optionsRecord,
    files: options.targets.map((t) => cached.get(t.name)!),
    compileMs,
  };
}

/** How often a build waiting for the cache looks again. */
const LOCK_POLL_MS = 1_000;

/**
 * Take `cacheDir`'s lock (a file holding the builder's PID), waiting while a live process holds
 * it; a lock left by a process that died (a killed build) is taken over. Resolves to its release.
 */
export async function lockCache(
  cacheDir: string,
  onProgress: IpxeBuildOptions["onProgress"],
): Promise<() => Promise<void>> {
  await mkdir(cacheDir, { recursive: true });
  const path = join(cacheDir, "build.lock");
  let said = false;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number((await readFile(path, "utf8").catch(() => "")).trim());
    if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) {
      await rm(path, { force: true });
      continue;
    }
    if (!said && onProgress) {
      onProgress(`waiting for another iPXE build in ${cacheDir} (pid ${holder || "?"})`, startProgress());
      said = true;
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, another user's.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function readResult(dir: string, target: IpxeTarget): Promise<BuiltBootloader | undefined> {
  const path = join(dir, target.name);
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes || checkBootloader(target.kind, bytes)) return undefined;
  return { name: target.name, goal: target.goal, sha256: sha256(bytes), size: bytes.length, cached: true, path };
}

/**
 * The source's identity: a tarball's sha256, or for a directory the sha256 over every file's path
 * and content (make's own outputs, `bin*` and `.git`, left out), so an edited file is a new source.
 */
export async function sourceDigest(source: string): Promise<string> {
  const info = await stat(source).catch((error: unknown) => {
    throw new CentraError("IPXE_SOURCE", `${source}: ${(error as Error).message}`, { cause: error });
  });
  if (info.isFile()) return hashFile(source);
  const hash = createHash("sha256");
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      if (entry.name === ".git" || (entry.isDirectory() && /^bin(-|$)/.test(entry.name))) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        hash.update(`${relative(source, path)}\0`);
        hash.update(await readFile(path));
      }
    }
  };
  await walk(source);
  return hash.digest("hex");
}

/**
 * iPXE's `src/` inside an unpacked copy of the source, made once per source digest. iPXE builds in
 * its tree; building in a copy keeps the operator's directory clean and lets two sources coexist.
 */
async function unpackedTree(source: string, digest: string, cacheDir: string): Promise<string> {
  const isDirectory = (await stat(source)).isDirectory();
  // A directory that is not iPXE is refused before anything is copied out of it.
  if (isDirectory && !(await ipxeSrcIn(source))) throw notIpxe(source);
  const tree = join(cacheDir, "trees", digest);
  if (!(await exists(tree))) {
    const temp = join(cacheDir, "trees", `.${digest}.${randomBytes(4).toString("hex")}`);
    await mkdir(temp, { recursive: true });
    try {
      if (!isDirectory) await run("tar", ["-xf", source, "-C", temp]);
      else await run("cp", ["-a", `${source}/.`, temp]);
      await rename(temp, tree);
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      throw error;
    }
  }
  const src = await ipxeSrcIn(tree);
  if (!src) throw notIpxe(source);
  return src;
}

/** iPXE's `src/` in `dir`: the repository (`src/`), a tarball's top directory (`ipxe/src/`), or `src/` itself. */
async function ipxeSrcIn(dir: string): Promise<string | undefined> {
  for (const candidate of [join(dir, "ipxe", "src"), join(dir, "src"), dir]) {
    if ((await exists(join(candidate, "Makefile"))) && (await exists(join(candidate, "include", "ipxe"))))
      return candidate;
  }
  return undefined;
}

function notIpxe(source: string): CentraError {
  return new CentraError(
    "IPXE_SOURCE",
    `${source} is not an iPXE source tree: no src/Makefile with include/ipxe in it (git clone https://github.com/ipxe/ipxe)`,
  );
}

/** Run make, feeding every output line to the progress; on failure, the error carries make's last lines. */
function runMake(args: string[], label: string, onProgress: IpxeBuildOptions["onProgress"]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("make", args, { stdio: ["ignore", "pipe", "pipe"] });
    let progress = startProgress();
    const tail: string[] = [];
    const take = (line: string) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      const next = stepProgress(progress, line);
      if (next !== progress) {
        progress = next;
        onProgress?.(formatProgress(label, progress), progress);
      }
    };
    createInterface({ input: child.stdout }).on("line", take);
    createInterface({ input: child.stderr }).on("line", take);
    child.once("error", (error) =>
      reject(
        new CentraError(
          "IPXE_BUILD",
          `cannot run make: ${error.message} (Debian: apt-get install gcc make perl liblzma-dev mtools)`,
          { cause: error },
        ),
      ),
    );
    child.once("close", (code) => {
      if (code === 0) resolve();
      else
        reject(
          new CentraError(
            "IPXE_BUILD",
            `make ${args.filter((a) => !a.startsWith("-")).join(" ")} failed (status ${code}); its last lines:\n${tail.join("\n")}`,
          ),
        );
    });
  });
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0
        ? resolve()
        : reject(new CentraError("IPXE_SOURCE", `${command} ${args.join(" ")} failed: ${stderr.trim()}`)),
    );
  });
}

async function writeIfChanged(path: string, text: string): Promise<void> {
  // An unchanged mtime keeps make from rebuilding every object that includes config/general.h.
  if ((await readFile(path, "utf8").catch(() => undefined)) !== text) await writeFile(path, text);
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .once("error", reject)
      .once("end", () => resolve(hash.digest("hex")));
  });
}

/** The manifest next to the installed bootloaders: what they are and how they were made. */
export const BUILD_MANIFEST = "centra-build.json";

export interface BuildManifest {
  builtAt: string;
  source: IpxeBuildResult["source"];
  options: IpxeBuildResult["options"];
  /** Every bootloader a build installed, each with the source and options it was built from. */
  files: Record<
    string,
    { sha256: string; size: number; goal: string; sourceSha256: string; builtAt: string } & IpxeBuildResult["options"]
  >;
}

/**
 * Install a build into `target` (stateDir/ipxe) like `init`: every file is read and checked before
 * any is written, each is replaced by a rename (a TFTP read never sees half a file), and the
 * manifest is written last, so it only ever describes files that are in place.
 */
export async function installBuild(
  result: IpxeBuildResult,
  target: string,
  now = new Date(),
): Promise<InstallReport & { manifest: BuildManifest }> {
  const found: CheckedBootloaders["found"] = [];
  for (const file of result.files) found.push({ name: file.name, bytes: await readFile(file.path) });
  const report = await writeBootloaders({ source: "ipxe build", found, missing: [] }, target);
  const manifestPath = join(target, BUILD_MANIFEST);
  // Files of earlier builds that this one did not make stay listed: they are still served.
  const previous = await readFile(manifestPath, "utf8")
    .then((text) => JSON.parse(text) as Partial<BuildManifest>)
    .catch(() => undefined);
  const manifest: BuildManifest = {
    builtAt: now.toISOString(),
    source: result.source,
    options: result.options,
    files: {
      ...(previous?.files ?? {}),
      ...Object.fromEntries(
        result.files.map((f) => [
          f.name,
          {
            sha256: f.sha256,
            size: f.size,
            goal: f.goal,
            sourceSha256: result.source.sha256,
            builtAt: now.toISOString(),
            ...result.options,
          },
        ]),
      ),
    },
  };
  const temp = join(target, `.${BUILD_MANIFEST}.${randomBytes(4).toString("hex")}`);
  await writeFile(temp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(temp, manifestPath);
  return { ...report, manifest };
}
