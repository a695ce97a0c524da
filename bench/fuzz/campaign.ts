import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliArgs, repo, runCli } from "../../test/support/daemon.js";
import { createLink, type TestLink } from "../../test/support/netns.js";
import type { SenderTally } from "./sender.js";

/**
 * The fuzz campaign: `centra-pxe serve` from source in a server namespace, a client namespace
 * across a veth where a stranger (its own address) sends mutated DHCP, TFTP and HTTP at it, and
 * real clients (udhcpc, tftp-hpa, curl) from the machine's address before, during and after.
 * Watches the daemon's process (exit = crash), its RSS, its error log lines and its /metrics.
 */

export interface CampaignOptions {
  seed: number;
  dhcp: number;
  tftp: number;
  http: number;
  /**
   * Floods to run a second time after the three, with a fresh input stream (new MACs, new names):
   * memory that grew in the first round and is bounded stays level in the second; a leak grows again.
   */
  repeat?: readonly Protocol[];
  /**
   * Run the daemon with `--trace-gc` and report the V8 heap after its full collections, per flood:
   * tells a heap that keeps growing (a leak) from RSS that a past peak left behind (malloc arenas,
   * a heap V8 grew and keeps).
   */
  traceGc?: boolean;
  /** Where the daemon's log goes; default a file in the campaign's temporary directory (removed). */
  logFile?: string;
  /** Progress lines (phase changes, probes) to this function; default silent. */
  progress?: (line: string) => void;
}

export type Protocol = "dhcp" | "tftp" | "http";

/** One round of real clients: each entry is "ok" or what went wrong. */
export interface ProbeRound {
  when: string;
  dhcp: string;
  tftp: string;
  health: string;
  bootFile: string;
}

export interface CampaignResult {
  seed: number;
  senders: SenderTally[];
  /** The daemon exited (crashed) during the campaign; its exit code or signal. */
  crash?: string;
  rssKiB: { before: number; after: number; max: number };
  /** RSS at the end of each flood and the most it reached during it. */
  rssByPhase: { phase: string; endKiB: number; maxKiB: number }[];
  /**
   * With `traceGc`: the main thread's V8 heap in use after full (mark-compact) collections, as it
   * was after the last one in each phase and the most it was after one (MiB).
   */
  heapByPhase?: { phase: string; lastMiB: number; maxMiB: number; collections: number }[];
  probes: ProbeRound[];
  /** /metrics before and after, only the counters that tell what the daemon made of the input. */
  metrics: { before: Record<string, number>; after: Record<string, number> };
  /** Log lines at level error or fatal (the daemon caught something it did not expect). */
  errorLines: number;
  /** Those lines by kind ("msg: err.message"), with how often each came. */
  errorKinds: Record<string, number>;
  durationMs: number;
}

const NODE_MAC = "52:54:00:fa:22:01";

function writeConfig(dir: string, link: TestLink): string {
  const net = link.serverIp.replace(/\.1$/, "");
  const file = join(dir, "config.yaml");
  writeFileSync(
    file,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
# warn: a million refusals at info would measure the logger, not the daemon; errors still show.
logLevel: warn
http:
  # The stranger is one address with 128 connections at once: above the per-address cap (32 by
  # default), most would be closed on arrival and never reach the parser this campaign is about.
  # The cap itself is tested in test/http; it refused 80% of them in the first run on merged code.
  maxConnectionsPerAddress: 256
dhcp:
  subnet: ${net}.0
  netmask: 255.255.255.0
  range: { start: ${net}.100, end: ${net}.150 }
  router: ${link.serverIp}
  leaseTime: 10m
nodes:
  # The real client has a fixed address, so a pool the flood exhausts does not hide a stall.
  "${NODE_MAC}": { profile: control-plane, hostname: real-client, ipAddress: ${net}.50 }
`,
  );
  return file;
}

/** Run a command in the client namespace; resolves with its exit code and output, killed after `ms`. */
function runInClient(
  link: TestLink,
  cmd: string,
  args: string[],
  ms: number,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn("ip", ["netns", "exec", link.clientNs, cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function probeRealClients(link: TestLink, dir: string, when: string): Promise<ProbeRound> {
  const fixed = link.serverIp.replace(/\.1$/, ".50");
  const bootloader = readFileSync(join(dir, "state", "ipxe", "undionly.kpxe"));
  const dhcp = (async () => {
    // udhcpc retries 3 times, 2 s apart; -s /bin/true keeps it from touching the link.
    const r = await runInClient(
      link,
      "udhcpc",
      ["-i", link.clientIf, "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", "/bin/true"],
      30_000,
    );
    return r.out.includes(`lease of ${fixed} obtained`)
      ? "ok"
      : `no lease: ${r.out.trim().split("\n").slice(-2).join(" | ")}`;
  })();
  const tftp = (async () => {
    const target = join(dir, `tftp-${when.replace(/\W+/g, "-")}.kpxe`);
    const r = await runInClient(
      link,
      "tftp",
      [link.serverIp, "-m", "binary", "-c", "get", "undionly.kpxe", target],
      30_000,
    );
    let got: Buffer | undefined;
    try {
      got = readFileSync(target);
    } catch {
      /* not fetched */
    }
    return got && sha256(got) === sha256(bootloader)
      ? "ok"
      : `tftp failed (exit ${r.code}): ${r.out.trim().slice(0, 200)}`;
  })();
  const curl = (path: string, ...extra: string[]) =>
    runInClient(
      link,
      "curl",
      ["-sS", "--max-time", "20", "-o", "-", "-w", "\\n%{http_code}", ...extra, `http://${link.serverIp}${path}`],
      30_000,
    );
  const health = (async () => {
    const r = await curl("/health");
    return /"status":"ok"/.test(r.out) && r.out.endsWith("200") ? "ok" : `health: ${r.out.slice(-200)}`;
  })();
  const bootFile = (async () => {
    const file = join(dir, `http-${when.replace(/\W+/g, "-")}.kpxe`);
    const r = await runInClient(
      link,
      "curl",
      ["-sS", "--max-time", "20", "-o", file, `http://${link.serverIp}/boot/ipxe/undionly.kpxe`],
      30_000,
    );
    let got: Buffer | undefined;
    try {
      got = readFileSync(file);
    } catch {
      /* not fetched */
    }
    return got && sha256(got) === sha256(bootloader) ? "ok" : `boot file (exit ${r.code}): ${r.out.slice(0, 200)}`;
  })();
  return { when, dhcp: await dhcp, tftp: await tftp, health: await health, bootFile: await bootFile };
}

/** The counters that say what the daemon made of the input (and the HTTP statuses it answered). */
export function parseMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m =
      /^(centra_pxe_(?:dhcp|tftp)_\w+_total|centra_pxe_(?:http_requests_total|nodes)\{[^}]*\}) (\d+(?:\.\d+)?(?:e\+\d+)?)$/.exec(
        line,
      );
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

async function fetchMetrics(link: TestLink): Promise<Record<string, number>> {
  const r = await runInClient(link, "curl", ["-sS", "--max-time", "30", `http://${link.serverIp}/metrics`], 40_000);
  return parseMetrics(r.out);
}

function rssKiB(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function runSender(
  link: TestLink,
  args: string[],
  progress: (line: string) => void,
): { child: ChildProcess; started: Promise<void>; done: Promise<SenderTally> } {
  const child = spawn(
    "ip",
    ["netns", "exec", link.clientNs, process.execPath, "--import", "tsx", join(repo, "bench/fuzz/sender.ts"), ...args],
    {
      cwd: repo,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  let onStarted = () => {};
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => {
    err += c.toString();
    if (err.includes('{"started"')) onStarted();
    for (const line of c.toString().split("\n")) if (line.startsWith("{")) progress(`  ${args[1]} ${line}`);
  });
  const done = new Promise<SenderTally>((resolve, reject) => {
    child.on("close", (code) => {
      const last = out.trim().split("\n").at(-1);
      if (code === 0 && last) resolve(JSON.parse(last) as SenderTally);
      else reject(new Error(`sender ${args.join(" ")} exited ${code}: ${err.slice(-2000)}`));
    });
  });
  done.finally(onStarted).catch(() => {});
  return { child, started, done };
}

export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const progress = options.progress ?? (() => {});
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "fuzz-"));
  const link = createLink();
  // The stranger's address, beside the machine's own (.2): per-address limits are the daemon's to apply.
  const attacker = link.serverIp.replace(/\.1$/, ".3");
  let daemon: ChildProcess | undefined;
  try {
    link.inClient("ip", ["addr", "add", `${attacker}/24`, "dev", link.clientIf]);
    link.inClient("ip", ["link", "set", link.clientIf, "address", NODE_MAC]);
    link.inClient("sysctl", ["-qw", "net.ipv4.ip_local_port_range=1024 65000"]);
    const config = writeConfig(dir, link);
    runCli(["init", "--config", config]);

    const logFile = options.logFile ?? join(dir, "daemon.log");
    const log = createWriteStream(logFile);
    const heapByPhase: NonNullable<CampaignResult["heapByPhase"]> = [];
    let heapPhase = { phase: "before", lastMiB: 0, maxMiB: 0, collections: 0 };
    // The trace has one heap per isolate: the main thread's (the first to log, it starts first),
    // where the daemon keeps its state, and each worker's (TFTP transfers, tsx's loader), a few MiB
    // each that are collected at start-up and then rarely. Only the main thread's is followed.
    let mainIsolate: string | undefined;
    const noteCollection = (isolate: string, heapMiB: number | undefined) => {
      mainIsolate ??= isolate;
      if (isolate !== mainIsolate || heapMiB === undefined) return;
      heapPhase.lastMiB = heapMiB;
      heapPhase.maxMiB = Math.max(heapPhase.maxMiB, heapMiB);
      heapPhase.collections++;
    };
    const nextHeapPhase = (phase: string) => {
      heapByPhase.push(heapPhase);
      heapPhase = { phase, lastMiB: heapPhase.lastMiB, maxMiB: 0, collections: 0 };
    };
    let errorLines = 0;
    const errorKinds: Record<string, number> = {};
    let pending = "";
    const onLog = (chunk: Buffer) => {
      log.write(chunk);
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const gc = GC_TRACE.exec(line);
        if (gc) {
          noteCollection(gc[1]!, gc[2] === undefined ? undefined : Number(gc[2]));
          continue;
        }
        // pino levels: 50 error, 60 fatal; anything not JSON (a stack trace on stderr) counts too.
        if (/"level":(50|60)/.test(line) || (line.trim() && !line.startsWith("{"))) {
          errorLines++;
          const kind = errorKind(line);
          errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
        }
      }
    };
    const nodeFlags = options.traceGc ? ["--trace-gc"] : [];
    daemon = link.spawnInServer(process.execPath, [...nodeFlags, ...cliArgs(["serve", "--config", config])], {
      cwd: repo,
    });
    daemon.stdout!.on("data", onLog);
    daemon.stderr!.on("data", onLog);
    let crash: string | undefined;
    daemon.on("exit", (code, signal) => (crash = `exited with ${signal ?? `code ${code}`}`));
    // At logLevel warn the daemon does not say "serving"; /health answering 200 says it instead.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const health = await runInClient(
        link,
        "curl",
        ["-sf", "--max-time", "2", `http://${link.serverIp}/health`],
        5000,
      );
      if (health.code === 0) break;
      if (crash || Date.now() > deadline)
        throw new Error(`the daemon did not start (${crash ?? "timeout"}); log in ${logFile}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // `ip netns exec` execs the command, so the child's pid is the daemon's.
    const pid = daemon.pid!;

    const probes: ProbeRound[] = [];
    const probe = async (when: string) => {
      const round = await probeRealClients(link, dir, when);
      probes.push(round);
      progress(`real clients ${when}: ${JSON.stringify(round)}`);
    };
    await probe("before");
    const metricsBefore = await fetchMetrics(link);
    const before = rssKiB(pid);
    let max = before;
    let phaseMax = before;
    const rssByPhase: CampaignResult["rssByPhase"] = [];
    const sampler = setInterval(() => {
      const now = rssKiB(pid);
      max = Math.max(max, now);
      phaseMax = Math.max(phaseMax, now);
    }, 250);
    progress(`daemon pid ${pid}, RSS ${before} KiB; seed ${options.seed}`);

    const senders: SenderTally[] = [];
    const counts: Record<Protocol, number> = { dhcp: options.dhcp, tftp: options.tftp, http: options.http };
    const phases: [Protocol, number][] = [
      ...(["dhcp", "tftp", "http"] as const).map((p): [Protocol, number] => [p, 1]),
      ...(options.repeat ?? []).map((p): [Protocol, number] => [p, 2]),
    ];
    for (const [protocol, round] of phases) {
      const count = counts[protocol];
      if (count <= 0 || crash) continue;
      const phase = round === 1 ? protocol : `${protocol} again`;
      progress(`${phase}: sending ${count}`);
      nextHeapPhase(phase);
      // Each protocol gets its own stream, so changing one count does not change the others' input;
      // a second round gets another stream (round 1 keeps the seed's original input).
      const seed = (options.seed * 31 + protocol.charCodeAt(0) + (round - 1) * 0x9e3779b9) >>> 0;
      const sender = runSender(
        link,
        [
          "--protocol",
          protocol,
          "--server",
          link.serverIp,
          "--bind",
          attacker,
          "--seed",
          String(seed),
          "--count",
          String(count),
          "--daemon-pid",
          String(pid),
        ],
        progress,
      );
      // Real clients while the flood is on: from its first datagram, or a second later for a long one
      // (the rate has ramped up by then).
      const during = sender.started
        .then(() => new Promise((resolve) => setTimeout(resolve, count >= 100_000 ? 2000 : 0)))
        .then(() => probe(`during ${phase}`));
      try {
        senders.push(await sender.done);
      } catch (error) {
        if (!crash) throw error;
      }
      await during;
      if (crash) break;
      rssByPhase.push({ phase, endKiB: rssKiB(pid), maxKiB: phaseMax });
      phaseMax = 0;
    }
    nextHeapPhase("settle");
    // Unacknowledged transfers time out and half-open connections close; then memory is read.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    clearInterval(sampler);
    const after = rssKiB(pid);
    if (!crash) await probe("after");
    const metricsAfter = crash ? {} : await fetchMetrics(link);
    log.end();
    return {
      seed: options.seed,
      senders,
      crash,
      rssKiB: { before, after, max },
      rssByPhase,
      ...(options.traceGc ? { heapByPhase: [...heapByPhase, heapPhase] } : {}),
      probes,
      metrics: { before: metricsBefore, after: metricsAfter },
      errorLines,
      errorKinds,
      durationMs: Date.now() - started,
    };
  } finally {
    if (daemon && daemon.exitCode === null) daemon.kill("SIGKILL");
    link.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * "msg: err.message" of a JSON log line (the line itself, cut, when it is not JSON), with hardware
 * addresses blanked so one kind of error from many fake clients is one kind.
 */
function errorKind(line: string): string {
  let kind: string;
  try {
    const entry = JSON.parse(line) as { msg?: string; err?: { message?: string } };
    kind = `${entry.msg ?? ""}: ${entry.err?.message ?? ""}`;
  } catch {
    kind = line;
  }
  return kind
    .replace(/\b(?:MAC )?[0-9a-f]{2}(?::[0-9a-f]{2})*\b/g, (m) =>
      m.startsWith("MAC ") ? "MAC <hw>" : m.includes(":") ? "<hw>" : m,
    )
    .slice(0, 200);
}

/**
 * A `--trace-gc` line: `[pid:0xISOLATE]  1234 ms: Mark-Compact 60.1 (75.2) -> 41.3 (70.0) MB, …`; the
 * groups are the isolate and, for a full collection, the heap in use after it. Scavenges (young
 * generation only) say little about a leak and give no second group.
 */
const GC_TRACE = /^\[\d+:(0x[0-9a-f]+)\]\s+[\d.]+ ms: (?:Mark-Compact[^>]*-> ([\d.]+) \(|\S)/;

/** The summary table the CLI prints (and the README quotes). */
export function summarize(result: CampaignResult): string {
  const rows: string[][] = [["", "sent", "seconds", "per second", "kernel drops", "came back"]];
  for (const s of result.senders) {
    const came = s.statuses
      ? Object.entries(s.statuses)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k}:${v}`)
          .join(" ")
      : String(s.repliesSeen ?? "");
    rows.push([
      s.protocol,
      String(s.sent),
      (s.ms / 1000).toFixed(1),
      String(Math.round(s.sent / (s.ms / 1000))),
      String(s.kernelDrops ?? "-"),
      came,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
  const delta = (name: string) => (result.metrics.after[name] ?? 0) - (result.metrics.before[name] ?? 0);
  const counters = [
    "centra_pxe_dhcp_received_total",
    "centra_pxe_dhcp_malformed_total",
    "centra_pxe_dhcp_ignored_total",
    "centra_pxe_dhcp_dropped_total",
    "centra_pxe_dhcp_replies_total",
    "centra_pxe_dhcp_send_errors_total",
    "centra_pxe_tftp_junk_dropped_total",
    "centra_pxe_tftp_requests_refused_total",
    "centra_pxe_tftp_transfers_started_total",
    "centra_pxe_tftp_transfers_failed_total",
  ]
    .map((n) => `  ${n.replace("centra_pxe_", "")} +${delta(n)}`)
    .join("\n");
  const http = Object.keys(result.metrics.after)
    .filter((k) => k.startsWith("centra_pxe_http_requests_total"))
    .map((k) => `${/status="(\d+)"/.exec(k)?.[1]}/${/kind="([^"]+)"/.exec(k)?.[1]} +${delta(k)}`)
    .filter((s) => !s.endsWith("+0"))
    .join(", ");
  const nodes = Object.keys(result.metrics.after)
    .filter((k) => k.startsWith("centra_pxe_nodes{") && result.metrics.after[k])
    .map((k) => `${/state="([^"]+)"/.exec(k)?.[1]} ${result.metrics.after[k]}`)
    .join(", ");
  const probes = result.probes
    .map((p) => `  ${p.when.padEnd(12)} dhcp ${p.dhcp}, tftp ${p.tftp}, /health ${p.health}, boot file ${p.bootFile}`)
    .join("\n");
  const mib = (k: number) => `${(k / 1024).toFixed(1)} MiB`;
  return [
    `seed ${result.seed}, ${(result.durationMs / 1000).toFixed(0)} s in all`,
    table,
    `daemon crashes: ${result.crash ? `1 (${result.crash})` : 0}`,
    `daemon RSS: before ${mib(result.rssKiB.before)}, after ${mib(result.rssKiB.after)}, max ${mib(result.rssKiB.max)}`,
    `  by flood: ${result.rssByPhase.map((p) => `${p.phase} max ${mib(p.maxKiB)} end ${mib(p.endKiB)}`).join(", ")}`,
    ...(result.heapByPhase
      ? [
          `main thread's V8 heap after full collections: ${result.heapByPhase
            .map((p) => `${p.phase} last ${p.lastMiB.toFixed(1)} max ${p.maxMiB.toFixed(1)} MiB (${p.collections})`)
            .join(", ")}`,
        ]
      : []),
    `error/fatal log lines: ${result.errorLines}`,
    ...Object.entries(result.errorKinds).map(([kind, n]) => `  ${n} × ${kind}`),
    `/metrics, change over the campaign:\n${counters}\n  http requests (status/kind): ${http || "none counted"}\n  nodes in the inventory after: ${nodes}`,
    `real clients:\n${probes}`,
  ].join("\n");
}
