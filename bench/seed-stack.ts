import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../test/support/daemon.js";
import { sh } from "../test/support/netns.js";

/**
 * The seed's stack, the one Centra PXE replaces, as the benchmarks run it side by side with ours:
 * ISC dhcpd + tftpd-hpa (`in.tftpd`) + nginx, configured by `centra-pxe export` from the same config
 * (its dhcpd.conf, nginx.conf and the seed-shaped static boot.ipxe), serving that config's
 * `stateDir` (bootloaders from `init`, images from `images add`). Used by bench/storm and bench/boot.
 */

/** Where the stack runs: a namespace with the server's address on `ifname`. */
export interface SeedStackHost {
  ifname: string;
  ip: string;
  /** Run a command in the host's namespace to completion; its stdout. */
  run(cmd: string, args: string[]): string;
}

export const SEED_BINARIES = ["dhcpd", "in.tftpd", "nginx"] as const;

/** The binaries that are not installed (scripts/bootstrap installs them). */
export function missingSeedBinaries(): string[] {
  return SEED_BINARIES.filter((binary) => !existsSync(`/usr/sbin/${binary}`));
}

export async function waitUntil(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export const listening = (host: Pick<SeedStackHost, "run">, port: number, proto: "u" | "t"): boolean =>
  host.run("ss", [`-ln${proto}`]).includes(`:${port} `);

/**
 * Write the exported files into `dir` (the config's stateDir, already prepared) and start the three
 * daemons on `host` through `spawn` (the caller owns the processes and stops them); resolves once
 * each listens. `httpPort` is the config's `http.port`, which `export nginx` listens on and its
 * dhcpd.conf and boot.ipxe name.
 */
export async function startSeedStack(options: {
  host: SeedStackHost;
  config: string;
  dir: string;
  httpPort: number;
  spawn: (cmd: string, argv: string[]) => unknown;
}): Promise<void> {
  const { host, config, dir, spawn } = options;
  const missing = missingSeedBinaries();
  if (missing.length) throw new Error(`${missing.join(", ")} missing (scripts/bootstrap installs them)`);
  const exported = (what: string) => runCli(["export", what, "--config", config]);
  writeFileSync(join(dir, "dhcpd.conf"), exported("dhcpd"));
  writeFileSync(join(dir, "ipxe", "boot.ipxe"), exported("ipxe"));
  writeFileSync(
    join(dir, "nginx.conf"),
    exported("nginx")
      .replace(/^pid .*$/m, `pid ${dir}/nginx.pid;`)
      .replace(/^error_log .*$/m, "error_log stderr;"),
  );
  // nginx's workers and tftpd-hpa drop to an unprivileged user: the tree must be readable to it.
  sh("chmod", ["-R", "a+rX", dir]);
  writeFileSync(join(dir, "dhcpd.leases"), "");
  spawn("/usr/sbin/dhcpd", [
    "-f",
    "-q",
    "-4",
    "-cf",
    join(dir, "dhcpd.conf"),
    "-lf",
    join(dir, "dhcpd.leases"),
    "-pf",
    join(dir, "dhcpd.pid"),
    host.ifname,
  ]);
  spawn("/usr/sbin/in.tftpd", ["-L", "-s", "-a", `${host.ip}:69`, join(dir, "ipxe")]);
  mkdirSync(join(dir, "nginx-tmp"), { recursive: true });
  spawn("/usr/sbin/nginx", ["-p", join(dir, "nginx-tmp"), "-c", join(dir, "nginx.conf"), "-g", "daemon off;"]);
  await waitUntil("dhcpd", () => listening(host, 67, "u"));
  await waitUntil("tftpd", () => listening(host, 69, "u"));
  await waitUntil("nginx", () => listening(host, options.httpPort, "t"));
}
