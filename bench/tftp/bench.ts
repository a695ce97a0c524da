/**
 * TFTP benchmark (not a test): tftpd-hpa against ours on the same files, with the same clients,
 * across two network namespaces. Run through bench/tftp/run.sh (installs tftpd-hpa, needs root).
 *
 * Rows: files (undionly.kpxe 74 KB from /usr/lib/ipxe, 1 MB, 30 MB) × clients at once (1, 50) ×
 * client options: curl --tftp-blksize 1468 (curl has no windowsize option), atftp blksize 1468,
 * atftp blksize 1468 + windowsize 16 (tftpd-hpa does not implement RFC 7440, so it ignores the
 * option and runs lockstep: that row is what windowsize buys over it).
 * Each row runs at least `--repeat` times (default 3), and short rows more often (until a server
 * has a second of samples, at most 25 runs), and reports the median wall time of the whole batch;
 * throughput is total bytes delivered / that time.
 *
 * The wall time includes starting the client processes, which no server can shorten and which is
 * most of a 74 KB row. So each row also prints the same ratio net of it: the same clients are
 * timed asking for a file that does not exist (start-up plus one round trip) and that time is taken
 * off both servers' figures. The goal is judged on the raw ratio; the net one shows the servers.
 */
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createLink, sh, type TestLink } from "../../test/support/netns.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const repeat = Number(option("--repeat", "3"));
const windowSize = Number(option("--windowsize", "16"));
const concurrencies = option("--clients", "1,50").split(",").map(Number);
const only = option("--files", "undionly.kpxe,1m.bin,30m.bin").split(",");

const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), "cpxe-bench-tftp-"));
chmodSync(work, 0o755);
const root = join(work, "ipxe");
mkdirSync(root, { mode: 0o755 });

const files: { name: string; size: number; sha: string }[] = [];
function addFile(name: string, bytes: Buffer): void {
  writeFileSync(join(root, name), bytes, { mode: 0o644 });
  files.push({ name, size: bytes.length, sha: createHash("sha256").update(bytes).digest("hex") });
}
const undionly = "/usr/lib/ipxe/undionly.kpxe";
if (only.includes("undionly.kpxe")) {
  if (!existsSync(undionly)) throw new Error(`${undionly} missing: apt-get install ipxe`);
  copyFileSync(undionly, join(root, "undionly.kpxe"));
  chmodSync(join(root, "undionly.kpxe"), 0o644);
  const b = readFileSync(undionly);
  files.push({ name: "undionly.kpxe", size: b.length, sha: createHash("sha256").update(b).digest("hex") });
}
if (only.includes("1m.bin")) addFile("1m.bin", randomBytes(1024 * 1024));
if (only.includes("30m.bin")) addFile("30m.bin", randomBytes(30 * 1024 * 1024));

const link: TestLink = createLink({ subnet: "10.251.77" });
const children: ChildProcess[] = [];
function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  link.destroy();
  rmSync(work, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  cleanup();
  process.exit(130);
});

function waitReady(child: ChildProcess, what: string, check: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (child.exitCode !== null) return reject(new Error(`${what} exited with ${child.exitCode}`));
      if (check()) return resolve();
      if (Date.now() - started > 30_000) return reject(new Error(`${what} did not start`));
      setTimeout(poll, 100);
    };
    poll();
  });
}

function udpListening(port: number): boolean {
  const out = sh("ip", ["netns", "exec", link.serverNs!, "ss", "-uln"]);
  return out.includes(`${link.serverIp}:${port} `);
}

type ClientKind = "curl" | "atftp" | "atftp-window";
const clientLabel: Record<ClientKind, string> = {
  curl: "curl blksize 1468",
  atftp: "atftp blksize 1468",
  "atftp-window": `atftp blksize 1468 windowsize ${windowSize}`,
};

function clientCommand(kind: ClientKind, port: number, file: string, out: string): string {
  if (kind === "curl")
    return `curl -s --max-time 600 --tftp-blksize 1468 -o ${out} tftp://${link.serverIp}:${port}/${file}`;
  const opts =
    kind === "atftp-window" ? `--option "blksize 1468" --option "windowsize ${windowSize}"` : `--option "blksize 1468"`;
  return `atftp ${opts} -g -r ${file} -l ${out} ${link.serverIp} ${port} >/dev/null 2>&1`;
}

/**
 * Runs `clients` transfers at once inside the client namespace; returns the batch's wall time in ms.
 * `expectFailure`: the file does not exist and every client is expected to fail (the start-up baseline).
 */
function batch(
  kind: ClientKind,
  port: number,
  file: string,
  clients: number,
  out = "/dev/null",
  expectFailure = false,
): Promise<number> {
  const one = clientCommand(kind, port, file, out);
  const script = `s=$(date +%s%N); for i in $(seq ${clients}); do (${one} || echo "FAIL $?") & done; wait; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`;
  return new Promise((resolve, reject) => {
    const child = link.spawnInClient("sh", ["-c", script]);
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.on("close", () => {
      const failures = stdout.split("\n").filter((l) => l.startsWith("FAIL"));
      if (failures.length && !expectFailure)
        return reject(
          new Error(
            `${kind} ${file} ×${clients} from port ${port}: ${failures.length} transfers failed (exit codes: ${failures.join(", ")})`,
          ),
        );
      resolve(Number(stdout.trim().split("\n").pop()) / 1000);
    });
  });
}

async function verify(kind: ClientKind, port: number, file: { name: string; sha: string }): Promise<void> {
  const out = join(work, `verify-${port}-${kind}`);
  await batch(kind, port, file.name, 1, out);
  const sha = createHash("sha256").update(readFileSync(out)).digest("hex");
  rmSync(out);
  if (sha !== file.sha) throw new Error(`${kind} from port ${port}: ${file.name} differs`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * Times `run` against both servers, alternating so a noisy neighbour hurts both alike: at least
 * `repeat` runs each, more for short rows (until each server has 1 s of samples, at most 25 runs).
 */
async function alternate(ports: number[], run: (port: number) => Promise<number>): Promise<Record<number, number[]>> {
  const times: Record<number, number[]> = Object.fromEntries(ports.map((p) => [p, []]));
  for (let r = 0; r < 25; r++) {
    if (r >= repeat && ports.every((p) => sum(times[p]!) >= 1000)) break;
    for (const port of ports) times[port]!.push(await run(port));
  }
  return times;
}
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

async function main(): Promise<void> {
  const hpaPort = 69;
  const oursPort = 6969;
  const hpa = link.spawnInServer("in.tftpd", ["-L", "-a", `${link.serverIp}:${hpaPort}`, "-s", root], {
    stdio: "ignore",
  });
  children.push(hpa);
  const ours = link.spawnInServer(
    process.execPath,
    ["--import", "tsx", join(here, "serve-ours.ts"), work, link.serverIp, String(oursPort)],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  children.push(ours);
  await waitReady(hpa, "in.tftpd", () => udpListening(hpaPort));
  await waitReady(ours, "centra-pxe tftp", () => udpListening(oursPort));

  const kinds: ClientKind[] = ["curl", "atftp", "atftp-window"];
  for (const f of files) for (const k of kinds) for (const port of [hpaPort, oursPort]) await verify(k, port, f);
  console.log(`verified: every file byte-identical from both servers with every client\n`);

  const header = [
    "file",
    "clients",
    "client options",
    "tftpd-hpa s",
    "tftpd-hpa MB/s",
    "ours s",
    "ours MB/s",
    "ours/hpa",
    "net of client start-up",
  ];
  const rows: string[][] = [];
  // Client start-up (plus one round trip): the same clients asking both servers for a missing file.
  const startup = new Map<string, number>();
  for (const clients of concurrencies) {
    for (const k of kinds) {
      const times = await alternate([hpaPort, oursPort], (port) =>
        batch(k, port, "no-such-file", clients, "/dev/null", true),
      );
      startup.set(`${k}×${clients}`, Math.min(median(times[hpaPort]!), median(times[oursPort]!)));
    }
  }
  console.log(header.join(" | "));
  for (const f of files) {
    for (const clients of concurrencies) {
      for (const k of kinds) {
        const times = await alternate([hpaPort, oursPort], (port) => batch(k, port, f.name, clients));
        const bytes = f.size * clients;
        const th = median(times[hpaPort]!);
        const to = median(times[oursPort]!);
        const base = startup.get(`${k}×${clients}`)!;
        const net = to - base > 0 && th - base > 0 ? `${((th - base) / (to - base)).toFixed(2)}×` : "n/a";
        const row = [
          f.name,
          String(clients),
          clientLabel[k],
          (th / 1000).toFixed(3),
          mbps(bytes, th).toFixed(1),
          (to / 1000).toFixed(3),
          mbps(bytes, to).toFixed(1),
          `${(th / to).toFixed(2)}×`,
          net,
        ];
        rows.push(row);
        console.log(row.join(" | "));
      }
    }
  }
  console.log(
    `\nclient start-up + one round trip (ms): ${[...startup].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}`,
  );
  console.log(`\n| ${header.join(" | ")} |\n|${header.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(cleanup);
