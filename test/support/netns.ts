import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants } from "node:fs";
import type { TestContext } from "node:test";

/**
 * Test networks built from network namespaces and veth pairs that the test creates and removes.
 * Traffic only ever goes to addresses inside these namespaces.
 */

export const isCI = process.env.CI === "true" || process.env.CI === "1";

/** Where `name` is on PATH (or sbin), or undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])) {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return `${dir}/${name}`;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * Skip a test when a real peer is missing on a developer machine, but fail it under CI: a missing
 * client there means `.ci/run` forgot to install it, and a silent skip would hide that.
 */
export function requireBinaries(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((n) => !findBinary(n));
  if (missing.length === 0 && process.getuid?.() === 0) return true;
  const why = missing.length
    ? `missing ${missing.join(", ")} (scripts/bootstrap installs them)`
    : "needs root for network namespaces";
  if (isCI) throw new Error(`${why}: required under CI`);
  t.skip(why);
  return false;
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export interface TestLink {
  /** The namespace holding the server end, or undefined when the server end is in the test's own namespace. */
  serverNs: string | undefined;
  clientNs: string;
  serverIf: string;
  clientIf: string;
  serverIp: string;
  clientIp: string;
  prefix: number;
  /** Run a command in the client namespace. */
  inClient(cmd: string, args: string[]): string;
  spawnInClient(cmd: string, args: string[], options?: SpawnOptions): ChildProcess;
  spawnInServer(cmd: string, args: string[], options?: SpawnOptions): ChildProcess;
  destroy(): void;
}

let counter = 0;

/**
 * A veth pair between a server and a client namespace. With `serverInRoot`, the server end stays in
 * the test process's namespace so an in-process server can bind to it.
 * `clientIp: null` leaves the client end without an address (a DHCP client will take one).
 */
export function createLink(
  options: { serverInRoot?: boolean; subnet?: string; clientIp?: string | null } = {},
): TestLink {
  const id = `${process.pid.toString(36).slice(-3)}${(counter++).toString(36)}${randomBytes(1).toString("hex")}`;
  const base = options.subnet ?? `10.${200 + (process.pid % 50)}.${counter % 250}`;
  const serverIp = `${base}.1`;
  const clientIp = options.clientIp === null ? "" : (options.clientIp ?? `${base}.2`);
  const serverNs = options.serverInRoot ? undefined : `cps-${id}`;
  const clientNs = `cpc-${id}`;
  const serverIf = `cs${id}`.slice(0, 15);
  const clientIf = `cc${id}`.slice(0, 15);
  const inNs = (ns: string | undefined, args: string[]) => (ns ? ["ip", "netns", "exec", ns, ...args] : args);
  const run = (ns: string | undefined, args: string[]) => {
    const full = inNs(ns, args);
    return sh(full[0]!, full.slice(1));
  };

  if (serverNs) sh("ip", ["netns", "add", serverNs]);
  sh("ip", ["netns", "add", clientNs]);
  sh("ip", ["link", "add", serverIf, "type", "veth", "peer", "name", clientIf]);
  if (serverNs) sh("ip", ["link", "set", serverIf, "netns", serverNs]);
  sh("ip", ["link", "set", clientIf, "netns", clientNs]);
  run(serverNs, ["ip", "addr", "add", `${serverIp}/24`, "dev", serverIf]);
  run(serverNs, ["ip", "link", "set", serverIf, "up"]);
  if (serverNs) run(serverNs, ["ip", "link", "set", "lo", "up"]);
  if (clientIp) run(clientNs, ["ip", "addr", "add", `${clientIp}/24`, "dev", clientIf]);
  run(clientNs, ["ip", "link", "set", clientIf, "up"]);
  run(clientNs, ["ip", "link", "set", "lo", "up"]);

  const children: ChildProcess[] = [];
  const spawnIn = (ns: string | undefined, cmd: string, args: string[], opts: SpawnOptions = {}) => {
    const full = inNs(ns, [cmd, ...args]);
    const child = spawn(full[0]!, full.slice(1), { stdio: "pipe", ...opts });
    children.push(child);
    return child;
  };

  return {
    serverNs,
    clientNs,
    serverIf,
    clientIf,
    serverIp,
    clientIp,
    prefix: 24,
    inClient: (cmd, args) => run(clientNs, [cmd, ...args]),
    spawnInClient: (cmd, args, opts) => spawnIn(clientNs, cmd, args, opts),
    spawnInServer: (cmd, args, opts) => spawnIn(serverNs, cmd, args, opts),
    destroy() {
      for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
      for (const ns of [clientNs, serverNs]) {
        if (!ns) continue;
        try {
          // Kill anything left in the namespace (dhclient daemons) before removing it.
          const pids = sh("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean);
          for (const pid of pids) process.kill(Number(pid), "SIGKILL");
        } catch {
          /* gone already */
        }
        try {
          sh("ip", ["netns", "del", ns]);
        } catch {
          /* gone already */
        }
      }
      try {
        sh("ip", ["link", "del", serverIf]);
      } catch {
        /* removed with its namespace */
      }
    },
  };
}
