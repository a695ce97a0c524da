import type { Command } from "commander";
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { MACHINE_SCRIPT_PATH } from "../boot/ipxe.js";
import { parseConfig } from "../config/load.js";
import { httpOrigin } from "../config/primitives.js";
import type { Config } from "../config/schema.js";
import { bootloaderDir, ipxeBuildCacheDir } from "../files/state-dir.js";
import { buildIpxe, installBuild } from "../ipxe-build/build.js";
import { DEFAULT_TARGET_NAMES, selectTargets } from "../ipxe-build/targets.js";
import {
  CliError,
  findConfig,
  jsonOption,
  printJson,
  resolveStateDir,
  type StateOptions,
  stateOptions,
} from "./common.js";

interface IpxeBuildCliOptions extends StateOptions {
  source?: string;
  targets: string;
  url?: string;
  cacheDir?: string;
  jobs?: string;
  json?: boolean;
}

/** Where our build chains to: https:// when the config serves TLS (its CA embedded), else http://. */
export function defaultBuildOrigin(config: Config): string {
  return config.http.tls
    ? httpOrigin(config.serverAddress, config.http.tls.port, "https")
    : httpOrigin(config.serverAddress, config.http.port);
}

/** `centra-pxe ipxe build`: our own iPXE bootloaders (issue 17; the seed's `setup.sh --build-ipxe`). */
export function registerIpxeCommands(program: Command): void {
  const ipxe = program.command("ipxe").description("our own iPXE bootloaders");
  jsonOption(
    stateOptions(
      ipxe
        .command("build")
        .description(
          "build iPXE with an embedded script that chains straight to this server (and, with http.tls, our CA as trusted), then install it into stateDir/ipxe; cached by source and options",
        ),
    )
      .option(
        "--source <dir|tarball>",
        "the iPXE source: a clone of github.com/ipxe/ipxe, its src/, or a tarball (default: $CENTRA_PXE_IPXE_SOURCE)",
      )
      .option("--targets <names>", "comma-separated bootloaders to build", DEFAULT_TARGET_NAMES.join(","))
      .option(
        "--url <origin>",
        "the server the embedded script chains to (default: https://serverAddress[:http.tls.port] with http.tls, else http://serverAddress[:http.port])",
      )
      .option("--cache-dir <dir>", "unpacked sources, objects and results (default: stateDir/cache/ipxe)")
      .option("-j, --jobs <n>", "parallel compile jobs (default: the CPU count)"),
    "print the installed files and the build's options as JSON (no progress)",
  ).action(async (options: IpxeBuildCliOptions) => {
    const config = findConfig(options.config)?.config ?? parseConfig("{}", "<defaults>");
    const stateDir = resolveStateDir(options);
    const source = options.source ?? (process.env.CENTRA_PXE_IPXE_SOURCE || undefined);
    if (!source)
      throw new CliError(
        "IPXE_SOURCE",
        "no iPXE source: give --source DIR|TARBALL (git clone https://github.com/ipxe/ipxe) or set CENTRA_PXE_IPXE_SOURCE",
      );
    const selected = selectTargets(
      options.targets
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean),
    );
    if ("unknown" in selected)
      throw new CliError(
        "USAGE",
        `unknown --targets ${selected.unknown.join(", ")}; known: ${DEFAULT_TARGET_NAMES.join(", ")}`,
      );
    const jobs = options.jobs === undefined ? availableParallelism() : Number(options.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw new CliError("USAGE", `--jobs ${options.jobs} is not a count`);
    const origin = (options.url ?? defaultBuildOrigin(config)).replace(/\/+$/, "");
    if (!/^https?:\/\/[^/\s]+$/.test(origin))
      throw new CliError(
        "USAGE",
        `--url ${origin} is not an origin like http://10.0.100.10 or https://10.0.100.10:8443`,
      );
    let trustedCa: string | undefined;
    if (origin.startsWith("https://")) {
      const tls = config.http.tls;
      if (!tls)
        throw new CliError(
          "TLS",
          "an https:// URL needs the CA iPXE should trust: set http.tls in the config (centra-pxe tls init makes one)",
        );
      const caFile = tls.ca ?? tls.cert;
      trustedCa = await readFile(caFile, "utf8").catch((error: unknown) => {
        throw new CliError("TLS", `cannot read http.tls CA ${caFile}: ${(error as Error).message}`, { cause: error });
      });
    }

    const progress = options.json ? undefined : progressPrinter();
    const result = await buildIpxe({
      source,
      cacheDir: options.cacheDir ?? ipxeBuildCacheDir(stateDir),
      origin,
      ...(trustedCa !== undefined ? { trustedCa } : {}),
      targets: selected.targets,
      jobs,
      ...(progress ? { onProgress: progress.update } : {}),
    });
    progress?.done();
    const installed = await installBuild(result, bootloaderDir(stateDir));
    if (options.json) {
      printJson({ stateDir, compileMs: result.compileMs, ...installed });
      return;
    }
    for (const file of result.files)
      process.stdout.write(
        `${file.name.padEnd(16)} ${String(file.size).padStart(8)} bytes sha256 ${file.sha256}${file.cached ? " (cached)" : ""}\n`,
      );
    process.stdout.write(
      `chains to ${origin}${MACHINE_SCRIPT_PATH}${trustedCa !== undefined ? " trusting http.tls's CA" : ""}; ` +
        `${result.compileMs ? `compiled in ${(result.compileMs / 1000).toFixed(1)} s` : "nothing compiled (all cached)"}; ` +
        `installed into ${bootloaderDir(stateDir)} (${installed.installed.length} new, ${installed.unchanged.length} unchanged)\n`,
    );
  });
}

/**
 * make's progress as one line: redrawn in place on a terminal (at most ten times a second), else
 * a line per phase and per 250 objects compiled, so a CI log shows it is moving without 4000 lines.
 */
function progressPrinter(): {
  update: (line: string, p: { phase: string; compiled: number; planned: number }) => void;
  done: () => void;
} {
  const tty = process.stderr.isTTY;
  let lastDraw = 0;
  let drawn = false;
  // Without a terminal: a line the first time each phase shows and per 250 objects compiled. A
  // parallel make interleaves its phases line by line, so a line per phase *change* would be hundreds.
  let phasesShown = new Set<string>();
  let bucketShown = -1;
  let lastCompiled = 0;
  return {
    update(line, p) {
      if (tty) {
        const now = Date.now();
        if (now - lastDraw < 100) return;
        lastDraw = now;
        const width = process.stderr.columns ? process.stderr.columns - 1 : 100;
        process.stderr.write(`\r${line.slice(0, width).padEnd(width)}`);
        drawn = true;
        return;
      }
      if (p.compiled < lastCompiled) {
        // The next make run (another target directory) counts from zero again.
        phasesShown = new Set();
        bucketShown = -1;
      }
      lastCompiled = p.compiled;
      const bucket = p.phase === "compiling" ? Math.floor(p.compiled / 250) : bucketShown;
      if (phasesShown.has(p.phase) && bucket <= bucketShown) return;
      phasesShown.add(p.phase);
      bucketShown = Math.max(bucketShown, bucket);
      process.stderr.write(`${line}\n`);
    },
    done() {
      if (drawn) process.stderr.write("\n");
    },
  };
}
