import { type ChildProcess, spawn } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readSync,
  fstatSync,
  rmSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BmcError, type BmcEndpoint, defaultBmcPort } from "./client.js";

/**
 * The machine's serial console over LAN: IPMI 2.0 Serial over LAN (v2.0 §15, the SOL payload of an
 * RMCP+ session) through `ipmitool sol activate`, the one SOL client every operator has. Redfish
 * has no serial console resource a client can attach to (vendors put it behind SSH or their web
 * UI), so a Redfish node's console is refused as unsupported.
 *
 * Two uses: `attachConsole` hands the operator's terminal to ipmitool (`nodes console`), and
 * `ConsoleRecorder` keeps a session open with no terminal at all and writes what arrives to a
 * bounded file (the server, while a node provisions).
 */

export interface SolOptions {
  ipmitool?: string;
  /** RMCP+ cipher suite (`-C`). BMCs without "Get Channel Cipher Suites" (ipmi_sim) need 3, else each start waits ~10 s. */
  cipherSuite?: number;
}

/** ipmitool's arguments for a SOL command against `endpoint`, the password read from `passwordFile` (never argv). */
export function solArguments(
  endpoint: BmcEndpoint,
  passwordFile: string,
  command: "activate" | "deactivate",
  options: SolOptions = {},
): string[] {
  return [
    "-I",
    "lanplus",
    "-H",
    endpoint.address,
    "-p",
    String(endpoint.port ?? defaultBmcPort("ipmi")),
    "-U",
    endpoint.username,
    "-f",
    passwordFile,
    ...cipherSuiteArguments(options.cipherSuite ?? endpoint.cipherSuite),
    "sol",
    command,
  ];
}

function cipherSuiteArguments(suite: number | undefined): string[] {
  return suite !== undefined ? ["-C", String(suite)] : [];
}

function requireIpmi(endpoint: BmcEndpoint): void {
  if (endpoint.protocol !== "ipmi")
    throw new BmcError(
      "unsupported",
      "a serial console over LAN needs IPMI SOL; Redfish offers no console a client can attach to (use the BMC's own SSH or web console)",
    );
}

/** The password in a private 0600 file for one ipmitool run; `remove` deletes it and its directory. */
function passwordFileFor(endpoint: BmcEndpoint): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "centra-pxe-sol-"));
  const path = join(dir, "password");
  writeFileSync(path, endpoint.password, { mode: 0o600 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Attach this terminal to the node's console until the operator types `~.` (ipmitool's escape)
 * or the BMC ends the session; resolves with ipmitool's exit status.
 */
export async function attachConsole(endpoint: BmcEndpoint, options: SolOptions = {}): Promise<number> {
  requireIpmi(endpoint);
  const password = passwordFileFor(endpoint);
  return new Promise((resolve, reject) => {
    const child = spawn(options.ipmitool ?? "ipmitool", solArguments(endpoint, password.path, "activate", options), {
      stdio: "inherit",
    });
    child.once("error", (error: NodeJS.ErrnoException) => {
      password.remove();
      reject(
        error.code === "ENOENT"
          ? new BmcError("unsupported", "ipmitool is not installed (Debian: apt-get install ipmitool)", {
              cause: error,
            })
          : error,
      );
    });
    child.once("exit", (code) => {
      password.remove();
      resolve(code ?? 1);
    });
  });
}

export interface ConsoleRecorderOptions extends SolOptions {
  /** The file the console goes to (created, appended). */
  file: string;
  /** Largest the file may grow: past it the oldest half is dropped, so the end of a failed install stays. */
  maxBytes?: number;
  /** Wait before opening the session again after it ended (a power cycle, a BMC that dropped it). */
  restartDelayMs?: number;
  /** What went wrong, for the server's log; never the password. */
  onProblem?: (message: string) => void;
}

export const DEFAULT_CONSOLE_MAX_BYTES = 1024 * 1024;

/**
 * Records a node's SOL output to a file while it runs. ipmitool gets a pipe for stdin that is never
 * written (with /dev/null it would read EOF and end the session at once, and with no terminal it
 * only warns that it cannot set raw mode); the session is deactivated first, since a recorder that
 * died left it active and ipmitool refuses "SOL payload already active on another session".
 * `stop` closes stdin, which makes ipmitool deactivate and exit cleanly.
 */
export class ConsoleRecorder {
  private child: ChildProcess | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly fd: number;
  private size: number;
  private readonly password: { path: string; remove: () => void };

  constructor(
    private readonly endpoint: BmcEndpoint,
    private readonly options: ConsoleRecorderOptions,
  ) {
    requireIpmi(endpoint);
    mkdirSync(dirname(options.file), { recursive: true });
    this.fd = openSync(options.file, "a+", 0o640);
    this.size = fstatSync(this.fd).size;
    this.password = passwordFileFor(endpoint);
    this.start();
  }

  get running(): boolean {
    return !this.stopped;
  }

  private ipmitool(command: "activate" | "deactivate"): ChildProcess {
    return spawn(
      this.options.ipmitool ?? "ipmitool",
      solArguments(this.endpoint, this.password.path, command, this.options),
      { stdio: [command === "activate" ? "pipe" : "ignore", "pipe", "pipe"] },
    );
  }

  private start(): void {
    if (this.stopped) return;
    const deactivate = this.ipmitool("deactivate");
    deactivate.once("error", () => {});
    deactivate.once("close", () => {
      if (this.stopped) return;
      const child = this.ipmitool("activate");
      this.child = child;
      let stderr = "";
      child.stdout!.on("data", (chunk: Buffer) => this.write(chunk));
      child.stderr!.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString("utf8")).slice(-500);
      });
      child.once("error", (error) => this.options.onProblem?.(`ipmitool sol activate: ${error.message}`));
      child.once("close", (code) => {
        this.child = undefined;
        if (this.stopped) return;
        const why = stderr.replace(/tcgetattr: Inappropriate ioctl for device\n?/g, "").trim();
        this.options.onProblem?.(`SOL session ended (status ${code})${why ? `: ${why}` : ""}; reopening`);
        this.restartTimer = setTimeout(() => this.start(), this.options.restartDelayMs ?? 2_000);
      });
    });
  }

  private write(chunk: Buffer): void {
    const max = this.options.maxBytes ?? DEFAULT_CONSOLE_MAX_BYTES;
    if (this.size + chunk.length > max) this.dropOldestHalf(max);
    writeSync(this.fd, chunk);
    this.size += chunk.length;
  }

  /** Keep the newest half of the bound: a failed install's last lines matter most. */
  private dropOldestHalf(max: number): void {
    const keep = Math.min(this.size, Math.floor(max / 2));
    const tail = Buffer.alloc(keep);
    readSync(this.fd, tail, 0, keep, this.size - keep);
    ftruncateSync(this.fd, 0);
    const note = Buffer.from(`[centra-pxe: earlier console output dropped, the log is kept under ${max} bytes]\n`);
    // The file is opened for appending: these land at its (new) start.
    writeSync(this.fd, note);
    writeSync(this.fd, tail);
    this.size = note.length + keep;
  }

  /** End the session (ipmitool deactivates it on EOF) and close the file; resolves once ipmitool is gone. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child && child.exitCode === null) {
      const gone = new Promise<void>((resolve) => child.once("close", () => resolve()));
      child.stdin?.end();
      const kill = setTimeout(() => child.kill("SIGTERM"), 3_000);
      await gone;
      clearTimeout(kill);
    }
    closeSync(this.fd);
    this.password.remove();
  }
}

/**
 * The console recorders of a set of nodes: `reconcile` with the nodes that should be recorded now
 * (provisioning, with an IPMI BMC) starts a recorder for each new one and stops the others. Knows
 * nothing of the inventory; the server's provisioning part says who.
 */
export class ConsoleRecordings {
  private readonly recorders = new Map<string, { recorder: ConsoleRecorder; key: string; linger?: NodeJS.Timeout }>();

  /**
   * `lingerMs` (default 15 s): how long a node's recording goes on after it left the set. An
   * installer's last words (its callback's answer, a final error) come after the callback that
   * ended `provisioning`.
   */
  constructor(
    private readonly fileFor: (nodeId: string) => string | undefined,
    private readonly options: Omit<ConsoleRecorderOptions, "file" | "onProblem"> & {
      onProblem?: (nodeId: string, message: string) => void;
      lingerMs?: number;
    } = {},
  ) {}

  /** Node ids being recorded (lingering ones included). */
  get recording(): string[] {
    return [...this.recorders.keys()];
  }

  async reconcile(wanted: ReadonlyMap<string, BmcEndpoint>): Promise<void> {
    const stopping: Promise<void>[] = [];
    const linger = this.options.lingerMs ?? 15_000;
    for (const [nodeId, entry] of this.recorders) {
      const endpoint = wanted.get(nodeId);
      if (endpoint && endpointKey(endpoint) === entry.key) {
        // Wanted again before its linger ran out: it goes on.
        clearTimeout(entry.linger);
        entry.linger = undefined;
        continue;
      }
      // A changed BMC (address, user, password) gets a new session at once; a node that left lingers.
      if (endpoint || linger === 0) {
        clearTimeout(entry.linger);
        this.recorders.delete(nodeId);
        stopping.push(entry.recorder.stop());
      } else if (!entry.linger) {
        entry.linger = setTimeout(() => {
          if (this.recorders.get(nodeId) !== entry) return;
          this.recorders.delete(nodeId);
          void entry.recorder.stop();
        }, linger);
        entry.linger.unref();
      }
    }
    await Promise.all(stopping);
    for (const [nodeId, endpoint] of wanted) {
      if (this.recorders.has(nodeId) || endpoint.protocol !== "ipmi") continue;
      const file = this.fileFor(nodeId);
      if (!file) continue;
      try {
        const recorder = new ConsoleRecorder(endpoint, {
          ...this.options,
          file,
          onProblem: (message) => this.options.onProblem?.(nodeId, message),
        });
        this.recorders.set(nodeId, { recorder, key: endpointKey(endpoint) });
      } catch (error) {
        this.options.onProblem?.(nodeId, `cannot record its console: ${(error as Error).message}`);
      }
    }
  }

  /** Stop every recording now, lingering ones too (the server stops). */
  async stopAll(): Promise<void> {
    const entries = [...this.recorders.values()];
    this.recorders.clear();
    for (const entry of entries) clearTimeout(entry.linger);
    await Promise.all(entries.map((entry) => entry.recorder.stop()));
  }
}

function endpointKey(endpoint: BmcEndpoint): string {
  return JSON.stringify([endpoint.protocol, endpoint.address, endpoint.port, endpoint.username, endpoint.password]);
}
