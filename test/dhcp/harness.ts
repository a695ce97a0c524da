import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { ConfigInput } from "../../src/config/schema.js";
import { listLeases } from "../../src/store/leases-sqlite.js";
import type { LeaseRecord } from "../../src/contracts/lease-store.js";
import type { TestLink } from "../support/netns.js";

/** Shared pieces of the DHCP integration tests: a server child process in the server namespace. */

export const REPO = new URL("../../", import.meta.url).pathname;
export const CLIENT_SCRIPT = join(REPO, "test/dhcp/client-script.sh");

export interface ServerFiles {
  dir: string;
  configFile: string;
  dbFile: string;
  cleanup(): void;
}

/** A state directory with fake bootloaders, a JSON config for `link`, and a database path. */
export function serverFiles(
  link: TestLink,
  overrides: (base: string) => Partial<ConfigInput> = () => ({}),
): ServerFiles {
  const dir = mkdtempSync(join(tmpdir(), "centra-dhcp-"));
  mkdirSync(join(dir, "ipxe"));
  for (const name of ["undionly.kpxe", "ipxe.efi", "snponly.efi"]) writeFileSync(join(dir, "ipxe", name), "");
  const base = link.serverIp.replace(/\.1$/, "");
  const config: ConfigInput = {
    interface: link.serverIf,
    serverAddress: link.serverIp,
    stateDir: dir,
    dhcp: {
      subnet: `${base}.0`,
      netmask: "255.255.255.0",
      range: { start: `${base}.10`, end: `${base}.250` },
      router: link.serverIp,
      dns: [link.serverIp],
      leaseTime: "1h",
    },
    ...overrides(base),
  };
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(config));
  return {
    dir,
    configFile,
    dbFile: join(dir, "centra-pxe.db"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface ServerProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Start `test/dhcp/run-server.ts` in the link's server namespace and wait for `ready`. */
export async function startServerProcess(
  link: TestLink,
  files: ServerFiles,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const child = link.spawnInServer(
    process.execPath,
    ["--import", "tsx", join(REPO, "test/dhcp/run-server.ts"), files.configFile, files.dbFile],
    {
      cwd: REPO,
      env: { ...process.env, ...env },
    },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`DHCP server did not start within 60s:\n${out}`)), 60_000);
    const check = () => {
      if (out.includes("ready\n")) {
        clearTimeout(timer);
        child.stdout!.off("data", check);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`DHCP server exited with ${code}:\n${out}`));
    });
  });
  return {
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Kill the whole `ip netns exec … node` chain hard, as a crash would. */
export function killHard(server: ServerProcess): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) return resolve();
    server.child.once("exit", () => resolve());
    // `ip netns exec` execs node, so the child's pid is node's.
    server.child.kill("SIGKILL");
  });
}

export function leasesIn(dbFile: string): LeaseRecord[] {
  const db = new Database(dbFile, { readonly: false });
  try {
    return listLeases(db);
  } finally {
    db.close();
  }
}

/** Run a command to completion in a namespace, collecting output; never rejects on a non-zero exit. */
export function runToEnd(child: ChildProcess, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `check` until it returns a value, or fail after `timeoutMs` with `what`. */
export async function waitFor<T>(
  what: string | (() => string),
  check: () => T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(200);
  }
}
