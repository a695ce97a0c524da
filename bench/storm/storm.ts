/**
 * Boot storm (issue 12; a benchmark, not a test): N machines arrive within a window, each booting
 * as firmware does (bench/storm/client.ts), against, one after the other in the same run:
 *   (a) one Centra PXE on SQLite,
 *   (b) two Centra PXE on one PostgreSQL database, both answering DHCP on the segment (a machine
 *       boots from whichever OFFER came first, so each serves about half),
 *   (c) the seed's stack: ISC dhcpd + tftpd-hpa + nginx, configured by `centra-pxe export` from the
 *       same config (dhcpd.conf, nginx.conf, the seed-shaped static boot.ipxe).
 * Files come from a tmpfs (/dev/shm). Prints per setup: failures, p50/p99 from DISCOVER to the last
 * initrd byte, server CPU seconds during the storm and peak RSS (VmHWM), and our ratios to the seed.
 *
 *   nice node --import tsx bench/storm/storm.ts [--machines 1000] [--window 60] [--kernel-mb 10]
 *     [--initrd-mb 60] [--setups sqlite,postgres,seed] [--deadline 600]
 * As root (namespaces). Exits 1 when a setup of ours had a failure.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliArgs, prepareState, repo, runCli } from "../../test/support/daemon.js";
import { sh } from "../../test/support/netns.js";
import { type PostgresCluster, startPostgres } from "../../test/support/postgres.js";
import { createSegment, type Segment, type SegmentMember } from "../../test/support/segment.js";
import { listening, startSeedStack, waitUntil } from "../seed-stack.js";
import type { MachineResult, StormPlan } from "./client.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const machines = Number(option("--machines", "1000"));
const windowS = Number(option("--window", "60"));
const kernelMb = Number(option("--kernel-mb", "10"));
const initrdMb = Number(option("--initrd-mb", "60"));
const deadlineS = Number(option("--deadline", "600"));
const setups = option("--setups", "sqlite,postgres,seed").split(",");
/** Where each server's output goes in full (default: only its last 4,000 characters, shown if it dies). */
const logDir = option("--logs", "");
/** Our servers' `logLevel` (debug logs every DHCP exchange: what the failures were answered). */
const logLevel = option("--log-level", "warn");

// Inside the segment's own namespaces: a /16, so 1,000 machines fit in the pool.
const NET = "10.77";
const SERVER_IPS = [`${NET}.0.1`, `${NET}.0.2`];
const CLIENT_IP = `${NET}.0.250`;
const HTTP_PORT = 8080;

const work = mkdtempSync("/dev/shm/centra-storm-");
const macs = Array.from({ length: machines }, (_, i) => {
  const b = randomBytes(1)[0]!;
  return `52:54:${b.toString(16).padStart(2, "0")}:${((i >> 16) & 0xff).toString(16).padStart(2, "0")}:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
});
const kernel = randomBytes(Math.round(kernelMb * 1024 * 1024));
const initrd = randomBytes(Math.round(initrdMb * 1024 * 1024));

let segment: Segment | undefined;
let cluster: PostgresCluster | undefined;
const children: ChildProcess[] = [];
function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  segment?.destroy();
  cluster?.stop();
  rmSync(work, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

function withAddress(member: SegmentMember, ip: string): SegmentMember {
  member.run("ip", ["addr", "add", `${ip}/16`, "dev", member.ifname]);
  return { ...member, ip };
}

/** Our config for one server; every machine listed (the seed's boot.ipxe lists them one by one too). */
function ourConfig(dir: string, member: SegmentMember, storage?: string): string {
  const file = join(dir, "centra-pxe.json");
  writeFileSync(
    file,
    JSON.stringify({
      interface: member.ifname,
      serverAddress: member.ip,
      stateDir: dir,
      ...(storage ? { storage } : {}),
      logLevel,
      dhcp: {
        subnet: `${NET}.0.0`,
        netmask: "255.255.0.0",
        range: { start: `${NET}.1.0`, end: `${NET}.250.255` },
        leaseTime: "1h",
      },
      // The simulator's machines all fetch from one address (CLIENT_IP); real ones have one each,
      // so the per-address limits are lifted, as bench/http and bench/tftp do.
      http: { port: HTTP_PORT, maxConnectionsPerAddress: 0 },
      tftp: {
        limits: {
          maxTransfersPerClient: 4096,
          maxUnverifiedPerClient: 1024,
          requestsPerSecondPerClient: 10000,
          requestBurstPerClient: 10000,
        },
      },
      nodes: Object.fromEntries(macs.map((mac, i) => [mac, { profile: "worker", hostname: `storm-${i}` }])),
    }),
  );
  return file;
}

function spawnIn(member: SegmentMember, cmd: string, argv: string[]): ChildProcess {
  const child = member.spawn(cmd, argv, { cwd: repo });
  children.push(child);
  if (logDir) {
    const file = join(logDir, `${member.ns}-${cmd.split("/").pop()}.log`);
    child.stdout?.on("data", (d: Buffer) => appendFileSync(file, d));
    child.stderr?.on("data", (d: Buffer) => appendFileSync(file, d));
  }
  let log = "";
  child.stdout?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.on("exit", (code, signal) => {
    if (!stopping) process.stderr.write(`${cmd} exited (${code ?? signal}) early:\n${log}\n`);
  });
  return child;
}
let stopping = false;

/** CPU seconds (own and reaped children: tftpd-hpa forks a child per transfer) and VmHWM of one process. */
function processFigures(pid: number): { cpu: number; hwmKb: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[11..14] are utime, stime, cutime, cstime (proc(5) 14–17), in clock ticks (100/s).
    const cpu = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / 100;
    const hwm = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return { cpu, hwmKb: Number(hwm ?? 0) };
  } catch {
    return { cpu: 0, hwmKb: 0 };
  }
}
const nsPids = (ns: string) => sh("ip", ["netns", "pids", ns]).split(/\s+/).filter(Boolean).map(Number);

/** The PostgreSQL server and its backends (children of the postmaster). */
function postgresPids(): number[] {
  if (!cluster) return [];
  const postmaster = Number(readFileSync(join(cluster.socketDir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  const kids = sh("ps", ["-o", "pid=", "--ppid", String(postmaster)])
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  return [postmaster, ...kids];
}

/**
 * The namespace's UDP counters (/proc/net/snmp is per network namespace): a datagram the kernel
 * dropped because a socket's receive buffer was full (RcvbufErrors), or that found no socket
 * (NoPorts), shows here whichever process was slow.
 */
const UDP_COUNTERS = ["InDatagrams", "NoPorts", "InErrors", "RcvbufErrors", "SndbufErrors"] as const;
type UdpCounters = Record<(typeof UDP_COUNTERS)[number], number>;
function udpCounters(member: SegmentMember): UdpCounters {
  const lines = member
    .run("cat", ["/proc/net/snmp"])
    .split("\n")
    .filter((l) => l.startsWith("Udp: "));
  const names = lines[0]!.split(/\s+/).slice(1);
  const values = lines[1]!.split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(UDP_COUNTERS.map((c) => [c, values[names.indexOf(c)] ?? 0])) as UdpCounters;
}
function udpDelta(before: UdpCounters[], after: UdpCounters[]): UdpCounters {
  return Object.fromEntries(
    UDP_COUNTERS.map((c) => [c, after.reduce((sum, a, i) => sum + a[c] - before[i]![c], 0)]),
  ) as UdpCounters;
}
const udpSummary = (u: UdpCounters) =>
  `in ${u.InDatagrams}, rcvbuf drops ${u.RcvbufErrors}, no port ${u.NoPorts}, in errors ${u.InErrors}, sndbuf ${u.SndbufErrors}`;

interface Sample {
  cpu: number;
  hwmKb: number;
}
/**
 * CPU: the sum over every process. Peak RSS: per program (its `comm`), its largest process's VmHWM,
 * summed over programs: forked workers (tftpd-hpa's per transfer, PostgreSQL's backends, nginx's)
 * share most of their pages with their parent, so adding them up would count those many times.
 */
function sample(pids: number[]): Sample {
  let cpu = 0;
  const peakByProgram = new Map<string, number>();
  for (const pid of pids) {
    const figures = processFigures(pid);
    cpu += figures.cpu;
    let comm = "?";
    try {
      comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      /* gone */
    }
    peakByProgram.set(comm, Math.max(peakByProgram.get(comm) ?? 0, figures.hwmKb));
  }
  return { cpu, hwmKb: [...peakByProgram.values()].reduce((a, b) => a + b, 0) };
}

interface SetupResult {
  name: string;
  failures: number;
  failedAt: Map<string, number>;
  p50: number;
  p99: number;
  wallS: number;
  cpuS: number;
  rssMb: number;
  dbCpuS?: number;
  dbRssMb?: number;
  /** The simulator's event-loop delay: high means the client, not the server, was late. */
  loop: { p99Ms: number; maxMs: number };
  /** UDP counters during the storm: the client's namespace, and the servers' summed. */
  udp: { client: UdpCounters; servers: UdpCounters };
  /** The box's 1-minute load average when the storm began and when it ended (it is shared). */
  load: [string, string];
  /** p99 seconds of each step over the machines that booted: where the slowest boots spent it. */
  stepP99: [string, number][];
}

const oneMinuteLoad = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!;

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function storm(
  name: string,
  client: SegmentMember,
  servers: SegmentMember[],
  withDb: boolean,
): Promise<SetupResult> {
  // A previous setup's server had the same address and another MAC.
  client.run("ip", ["neigh", "flush", "all"]);
  const plan: StormPlan = { macs, windowMs: windowS * 1000, deadlineMs: deadlineS * 1000 };
  const planFile = join(work, `plan-${name}.json`);
  writeFileSync(planFile, JSON.stringify(plan));
  const serverPids = () => servers.map((s) => nsPids(s.ns));
  // Per server (namespace), so two servers running the same program count twice.
  const sampleServers = (): Sample =>
    serverPids()
      .map(sample)
      .reduce((a, b) => ({ cpu: a.cpu + b.cpu, hwmKb: a.hwmKb + b.hwmKb }), { cpu: 0, hwmKb: 0 });
  const loadBefore = oneMinuteLoad();
  const before = sampleServers();
  const udpBefore = { client: udpCounters(client), servers: servers.map(udpCounters) };
  const dbBefore = withDb ? sample(postgresPids()) : undefined;
  process.stderr.write(`${name}: ${machines} machines within ${windowS} s…\n`);
  const child = client.spawn(process.execPath, ["--import", "tsx", join(repo, "bench/storm/client.ts"), planFile], {
    cwd: repo,
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise((resolve) => child.on("exit", resolve));
  if (!out.trim()) throw new Error(`the storm client printed nothing:\n${err}`);
  const after = sampleServers();
  const udp = {
    client: udpDelta([udpBefore.client], [udpCounters(client)]),
    servers: udpDelta(udpBefore.servers, servers.map(udpCounters)),
  };
  const dbAfter = withDb ? sample(postgresPids()) : undefined;
  const parsed = JSON.parse(out) as {
    wallMs: number;
    loop: { p99Ms: number; maxMs: number };
    results: MachineResult[];
  };
  const { wallMs, loop } = parsed;
  // A machine that got short files did not boot, whatever the server answered.
  const results = parsed.results.map((r) =>
    r.ok && r.bytes < kernel.length + initrd.length ? { ...r, ok: false, failedAt: `short: ${r.bytes} bytes` } : r,
  );
  const times = results
    .filter((r) => r.ok)
    .map((r) => r.ms)
    .sort((a, b) => a - b);
  const stepNames = [...new Set(results.flatMap((r) => (r.ok && r.steps ? Object.keys(r.steps) : [])))];
  const stepP99 = stepNames.map((step): [string, number] => [
    step,
    percentile(
      results
        .filter((r) => r.ok)
        .map((r) => r.steps?.[step] ?? 0)
        .sort((a, b) => a - b),
      99,
    ) / 1000,
  ]);
  const failedAt = new Map<string, number>();
  for (const r of results.filter((r) => !r.ok)) {
    const key = (r.failedAt ?? "?").slice(0, 80);
    failedAt.set(key, (failedAt.get(key) ?? 0) + 1);
  }
  return {
    name,
    failures: results.filter((r) => !r.ok).length,
    failedAt,
    p50: percentile(times, 50) / 1000,
    p99: percentile(times, 99) / 1000,
    wallS: wallMs / 1000,
    loop,
    udp,
    load: [loadBefore, oneMinuteLoad()],
    stepP99,
    cpuS: after.cpu - before.cpu,
    rssMb: after.hwmKb / 1024,
    ...(dbBefore && dbAfter ? { dbCpuS: dbAfter.cpu - dbBefore.cpu, dbRssMb: dbAfter.hwmKb / 1024 } : {}),
  };
}

async function stopAll(): Promise<void> {
  stopping = true;
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 1500));
  stopping = false;
}

async function ourServers(count: number, storage?: string): Promise<SegmentMember[]> {
  const members: SegmentMember[] = [];
  let first: string | undefined;
  for (let n = 0; n < count; n++) {
    const member = withAddress(segment!.addMember(), SERVER_IPS[n]!);
    const dir = mkdtempSync(join(work, "ours-"));
    const config = ourConfig(dir, member, storage);
    if (!first) {
      prepareState(config, { kernel, initrd, version: "storm" });
      first = dir;
    } else {
      // The version is registered in the shared database already; this server's own stateDir
      // gets the same files (as an operator's rsync would).
      runCli(["init", "--config", config]);
      cpSync(join(first, "images"), join(dir, "images"), { recursive: true, verbatimSymlinks: true });
    }
    spawnIn(member, process.execPath, cliArgs(["serve", "--config", config]));
    members.push(member);
    // One after the other, as an operator brings them up: the storm measures serving, not start-up.
    await waitUntil(`DHCP on ${member.ip}`, () => listening(member, 67, "u"));
    await waitUntil(`HTTP on ${member.ip}`, () => listening(member, HTTP_PORT, "t"));
  }
  return members;
}

/** The seed's stack from `centra-pxe export`: dhcpd, in.tftpd (tftpd-hpa), nginx (bench/seed-stack.ts). */
async function seedStack(): Promise<SegmentMember[]> {
  const member = withAddress(segment!.addMember(), SERVER_IPS[0]!);
  const dir = mkdtempSync(join(work, "seed-"));
  // nginx's workers and tftpd-hpa drop to an unprivileged user: the tree must be reachable to it.
  for (const d of [work, dir]) chmodSync(d, 0o755);
  const config = ourConfig(dir, member);
  prepareState(config, { kernel, initrd, version: "storm" });
  await startSeedStack({
    host: { ...member, ip: member.ip! },
    config,
    dir,
    httpPort: HTTP_PORT,
    spawn: (cmd, argv) => spawnIn(member, cmd, argv),
  });
  return [member];
}

const fmt = (n: number | undefined, digits = 1) => (n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits));

async function main(): Promise<number> {
  segment = createSegment();
  const client = withAddress(segment.addMember(), CLIENT_IP);
  // The limited broadcast (255.255.255.255) needs a route out of the client's namespace.
  client.run("ip", ["route", "add", "default", "dev", client.ifname]);
  const results: SetupResult[] = [];
  for (const setup of setups) {
    let servers: SegmentMember[];
    let withDb = false;
    if (setup === "sqlite") servers = await ourServers(1);
    else if (setup === "postgres") {
      cluster ??= await startPostgres();
      if (!cluster) throw new Error("PostgreSQL is not available");
      servers = await ourServers(2, await cluster.createDatabase());
      withDb = true;
    } else if (setup === "seed") servers = await seedStack();
    else throw new Error(`unknown setup ${setup} (sqlite, postgres, seed)`);
    const name = { sqlite: "ours, SQLite", postgres: "ours ×2, PostgreSQL", seed: "seed: dhcpd+tftpd-hpa+nginx" }[
      setup
    ]!;
    results.push(await storm(name, client, servers, withDb));
    await stopAll();
    // Each setup on a fresh segment member: the next one starts from an empty pool.
    for (const s of servers) s.run("ip", ["link", "set", s.ifname, "down"]);
  }

  console.log(
    `\nBoot storm: ${machines} machines within ${windowS} s; kernel ${kernelMb} MB, initrd ${initrdMb} MB (tmpfs)\n`,
  );
  console.log(
    `${"setup".padEnd(30)} ${"failed".padStart(6)} ${"p50 s".padStart(7)} ${"p99 s".padStart(7)} ${"wall s".padStart(7)} ${"CPU s".padStart(7)} ${"RSS MB".padStart(7)}  PostgreSQL CPU s / RSS MB`,
  );
  for (const r of results) {
    console.log(
      `${r.name.padEnd(30)} ${String(r.failures).padStart(6)} ${fmt(r.p50, 2).padStart(7)} ${fmt(r.p99, 2).padStart(7)} ${fmt(r.wallS).padStart(7)} ${fmt(r.cpuS, 2).padStart(7)} ${fmt(r.rssMb).padStart(7)}  ${r.dbCpuS === undefined ? "" : `${fmt(r.dbCpuS, 2)} / ${fmt(r.dbRssMb)}`}`,
    );
    console.log(
      `    simulator event-loop delay p99 ${fmt(r.loop.p99Ms, 0)} ms, max ${fmt(r.loop.maxMs, 0)} ms; load average ${r.load[0]} → ${r.load[1]}`,
    );
    if (r.stepP99.length)
      console.log(`    p99 s by step: ${r.stepP99.map(([step, s]) => `${step} ${fmt(s, 2)}`).join(", ")}`);
    console.log(`    UDP, client: ${udpSummary(r.udp.client)}`);
    console.log(`    UDP, server${r.name.includes("×2") ? "s" : ""}: ${udpSummary(r.udp.servers)}`);
    for (const [why, count] of r.failedAt) console.log(`    ${count} × ${why}`);
  }
  const seed = results.find((r) => r.name.startsWith("seed"));
  if (seed) {
    console.log("\nratios to the seed's stack (p99: below 1 is faster; CPU and RSS: below 1 is less):");
    for (const r of results.filter((x) => x !== seed))
      console.log(
        `  ${r.name.padEnd(28)} p99 ${fmt(r.p99 / seed.p99, 2)}×   CPU ${fmt(r.cpuS / seed.cpuS, 2)}×${r.dbCpuS === undefined ? "" : ` (${fmt((r.cpuS + r.dbCpuS) / seed.cpuS, 2)}× with PostgreSQL)`}   RSS ${fmt(r.rssMb / seed.rssMb, 2)}×`,
      );
  }
  return results.some((r) => r !== seed && r.failures > 0) ? 1 : 0;
}

let status = 1;
try {
  status = await main();
} catch (error) {
  process.stderr.write(`${(error as Error).stack}\n`);
} finally {
  await stopAll();
  cleanup();
}
process.exit(status);
