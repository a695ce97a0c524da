import { type ChildProcess, execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { sh, type TestLink } from "./netns.js";

/** The repository root, for running the CLI from source. */
export const repo = fileURLToPath(new URL("../..", import.meta.url));

/** Arguments that run `centra-pxe ARGS` from source with this Node. */
export const cliArgs = (args: string[]): string[] => ["--import", "tsx", join(repo, "src/cli/main.ts"), ...args];

/** Run the CLI in the test's own namespace and return its stdout. */
export const runCli = (args: string[]): string => sh(process.execPath, cliArgs(args));

/** The CLI run from the link's client namespace with `env` (CENTRA_PXE_URL, CENTRA_PXE_TOKEN): an operator on the network. */
export const cliFromClient = (link: TestLink, env: Record<string, string>, args: string[]): string =>
  link.inClient("env", [...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, ...cliArgs(args)]);

/** curl from one of the client namespace's addresses (`source`) to the server's `path`. */
export const curlFromAddress = (link: TestLink, source: string, path: string, ...args: string[]): string =>
  link.inClient("curl", ["-sS", "--max-time", "20", "--interface", source, ...args, `http://${link.serverIp}${path}`]);

/** What a CLI run ended with. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `centra-pxe ARGS` as its own process, the way an operator runs it, and resolve with its exit
 * status and output (never rejects). The server URL and token come only from `env`, never from the
 * environment the suite runs in.
 */
export function cliProcess(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      cliArgs(args),
      { cwd: repo, env: { ...process.env, CENTRA_PXE_URL: "", CENTRA_PXE_TOKEN: "", ...env }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * `centra-pxe init` for `config`, then image `nixos` at `version` from the given kernel and initrd
 * bytes (written beside the config): the state every daemon test boots from.
 */
export function prepareState(config: string, image: { kernel: Buffer; initrd: Buffer; version?: string }): void {
  const dir = dirname(config);
  runCli(["init", "--config", config]);
  writeFileSync(join(dir, "bzImage"), image.kernel);
  writeFileSync(join(dir, "initrd"), image.initrd);
  const files = ["--kernel", join(dir, "bzImage"), "--initrd", join(dir, "initrd")];
  runCli(["images", "add", "nixos", ...files, "--version", image.version ?? "24.11", "--config", config]);
}

/** Poll `check` until it holds; on timeout the error carries `context()` (a server log, say). */
export async function waitFor(
  what: string,
  check: () => boolean,
  options: { ms?: number; context?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.ms ?? 30_000);
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${options.context ? `:\n${options.context()}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface RunningDaemon {
  process: ChildProcess;
  /** Everything the daemon has written so far (JSON log lines). */
  log(): string;
  waitForLog(what: string, check: (log: string) => boolean, ms?: number): Promise<void>;
}

/** `centra-pxe serve --config F` in the link's server namespace, resolved once it logs "serving". */
export async function startDaemon(link: TestLink, config: string): Promise<RunningDaemon> {
  const child = link.spawnInServer(process.execPath, cliArgs(["serve", "--config", config]), { cwd: repo });
  let log = "";
  child.stdout!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const daemon: RunningDaemon = {
    process: child,
    log: () => log,
    waitForLog: (what, check, ms) =>
      waitFor(what, () => check(log), { ms, context: () => `server log:\n${log.slice(-3000)}` }),
  };
  await daemon.waitForLog("the server to serve", (l) => l.includes('"msg":"serving"'));
  return daemon;
}
