import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { parseConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { createTftpService, type TftpService, type TftpLimits } from "../../src/tftp/index.js";
import { createLink, sh, type TestLink } from "../support/netns.js";

/** Files every TFTP test serves: a bootloader-sized file, a 1 MB one, a text file for netascii. */
export interface Fixture {
  stateDir: string;
  root: string;
  files: Record<string, Buffer>;
  /** A file outside the root that a symlink inside points at. */
  secret: string;
  cleanup(): void;
}

export function makeFixture(): Fixture {
  const stateDir = mkdtempSync(join(tmpdir(), "cpxe-tftp-"));
  const root = join(stateDir, "ipxe");
  mkdirSync(join(root, "sub"), { recursive: true });
  const files: Record<string, Buffer> = {
    // Same size as Debian's undionly.kpxe; random so a misplaced block cannot pass unnoticed.
    "undionly.kpxe": randomBytes(74213),
    "one-mb.bin": randomBytes(1024 * 1024),
    "exact.bin": randomBytes(1468 * 4),
    "empty.bin": Buffer.alloc(0),
    "readme.txt": Buffer.from("line one\nline two\r\nbare\rcr\n"),
    "sub/ipxe.efi": randomBytes(3000),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(root, name), bytes);
  const secret = join(stateDir, "secret.txt");
  writeFileSync(secret, "outside the root\n");
  symlinkSync(secret, join(root, "escape-link"));
  symlinkSync("undionly.kpxe", join(root, "inside-link"));
  return { stateDir, root, files, secret, cleanup: () => rmSync(stateDir, { recursive: true, force: true }) };
}

/** `workers` undefined: the service's default (one per core, up to 4); 0: everything in this thread. */
export async function startService(
  stateDir: string,
  bindAddress: string,
  limits?: Partial<TftpLimits>,
  workers?: number,
): Promise<TftpService> {
  const config = parseConfig(JSON.stringify({ stateDir, tftp: { port: 0, bindAddress } }));
  const service = createTftpService({ config, logger: silentLogger, limits, workers });
  await service.start();
  return service;
}

export function sha256(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

export function readSha(path: string): string {
  return sha256(readFileSync(path));
}

/** Run a command in the client namespace; resolves with exit code and output, never rejects. */
export function runInClient(
  link: TestLink,
  cmd: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = link.spawnInClient(cmd, args);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A link with the server end in this process's namespace, on a random /24 that no route in this
 * namespace uses yet: test files (ours and other parts') run in parallel, and two veths with the
 * same subnet in the root namespace would steal each other's traffic.
 */
export function makeLink(): TestLink {
  const routes = sh("ip", ["-4", "route", "show"]);
  for (;;) {
    const [a, b] = randomBytes(2);
    const subnet = `10.${100 + (a! % 100)}.${b! % 250}`;
    if (!routes.includes(`${subnet}.0/24`)) return createLink({ serverInRoot: true, subnet });
  }
}

export { sh, spawn };

/**
 * Drop `percent`% of the datagrams in each direction of the link. `tc … netem loss` on both veth
 * ends when the kernel has sch_netem; otherwise iptables' `statistic` match on the receiving side of
 * each direction: INPUT in the client namespace, and INPUT on the server's veth in this namespace
 * (some kernels, like this project's Firecracker dev VMs, are built without netem). Dropping on the
 * sender's OUTPUT instead would fail its sendto() with EPERM, which curl takes as fatal.
 * Returns the method used and the cleanup to run (the root-namespace rule outlives the veth).
 */
export function addLoss(link: TestLink, percent: number): { method: "netem" | "iptables"; remove(): void } {
  try {
    sh("ip", [
      "netns",
      "exec",
      link.clientNs,
      "tc",
      "qdisc",
      "add",
      "dev",
      link.clientIf,
      "root",
      "netem",
      "loss",
      `${percent}%`,
    ]);
    sh("tc", ["qdisc", "add", "dev", link.serverIf, "root", "netem", "loss", `${percent}%`]);
    return { method: "netem", remove: () => {} };
  } catch {
    try {
      sh("ip", ["netns", "exec", link.clientNs, "tc", "qdisc", "del", "dev", link.clientIf, "root"]);
    } catch {
      /* netem was not added */
    }
  }
  const drop = [
    "-p",
    "udp",
    "-m",
    "statistic",
    "--mode",
    "random",
    "--probability",
    String(percent / 100),
    "-j",
    "DROP",
  ];
  sh("ip", ["netns", "exec", link.clientNs, "iptables", "-A", "INPUT", ...drop]);
  const serverRule = ["INPUT", "-i", link.serverIf, ...drop];
  sh("iptables", ["-A", ...serverRule]);
  return {
    method: "iptables",
    remove: () => {
      try {
        sh("iptables", ["-D", ...serverRule]);
      } catch {
        /* already removed */
      }
    },
  };
}
