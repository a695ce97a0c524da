import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Debian's `prometheus` and `prometheus-alertmanager`, started by a test on loopback in a temp
 * directory of their own, on a free port, and stopped (directory removed) by `stop`.
 */
export interface RunningPeer {
  url: string;
  log(): string;
  stop(): Promise<void>;
}

/** A port nothing listens on now (the peers cannot report the port they bound with :0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startPeer(
  binary: string,
  args: (dir: string, port: number) => string[],
  files: Record<string, string>,
  ready: string,
): Promise<RunningPeer> {
  const dir = mkdtempSync(join(tmpdir(), `${binary.replace(/\W/g, "")}-`));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const port = await freePort();
  const child: ChildProcess = spawn(binary, args(dir, port), { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`${binary} exited (${child.exitCode}):\n${log.slice(-2000)}`);
    }
    try {
      if ((await fetch(`${url}${ready}`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${binary} did not get ready on ${url}:\n${log.slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { url, log: () => log, stop };
}

/** Prometheus scraping `targets` (host:port) every second, with `rules` (a rules file's YAML) when given. */
export function startPrometheus(targets: string[], rules?: string): Promise<RunningPeer> {
  const config = [
    "global: { scrape_interval: 1s, evaluation_interval: 1s }",
    ...(rules ? ["rule_files: [rules.yml]"] : []),
    "scrape_configs:",
    "  - job_name: centra-pxe",
    `    static_configs: [{ targets: ${JSON.stringify(targets)} }]`,
  ].join("\n");
  return startPeer(
    "prometheus",
    (dir, port) => [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { "prometheus.yml": `${config}\n`, ...(rules ? { "rules.yml": rules } : {}) },
    "/-/ready",
  );
}

/** Alertmanager with one receiver that goes nowhere: the test reads alerts back through its API. */
export function startAlertmanager(): Promise<RunningPeer> {
  const config = ["route: { receiver: nowhere, group_wait: 1s }", "receivers: [{ name: nowhere }]"].join("\n");
  return startPeer(
    "prometheus-alertmanager",
    (dir, port) => [
      `--config.file=${join(dir, "alertmanager.yml")}`,
      `--storage.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip: a second Alertmanager of a concurrent test must not find this one (and no fixed port).
      "--cluster.listen-address=",
    ],
    { "alertmanager.yml": `${config}\n` },
    "/-/ready",
  );
}
