import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootRequest, bootResult } from "./boot-override.js";
import {
  BmcError,
  type BmcClient,
  type BmcEndpoint,
  type BmcIdentity,
  type BmcTimeouts,
  type BootDevice,
  type BootDeviceResult,
  type BootOptions,
  type BootOverride,
  DEFAULT_BMC_TIMEOUTS,
  defaultBmcPort,
  type PowerAction,
  type PowerState,
} from "./client.js";

/**
 * IPMI 2.0 over LAN (RMCP+, `-I lanplus`) through Debian's `ipmitool`: no well-kept IPMI library
 * exists on npm, and ipmitool is what every operator already trusts against their BMCs.
 *
 * Commands go as `raw` requests (IPMI v2.0 §28, chassis netfn 0x00) and answers are read as bytes,
 * not as ipmitool's prose, which changes between versions. The password never appears on a command
 * line (`ps` shows those to every user): it is written to a 0600 file in a private 0700 directory for
 * the one run and removed after it (`-f`). ipmitool cannot read it from a pipe: Node hands children
 * socketpairs, which `/dev/fd/N` cannot open.
 */

/** IPMI chassis netfn (v2.0 §28). */
const NETFN_CHASSIS = "0x00";
const CMD_GET_CHASSIS_STATUS = "0x01";
const CMD_CHASSIS_CONTROL = "0x02";
const CMD_SET_BOOT_OPTIONS = "0x08";
const CMD_GET_BOOT_OPTIONS = "0x09";
/** App netfn, Get System GUID (v2.0 §22.14). */
const NETFN_APP = "0x06";
const CMD_GET_SYSTEM_GUID = "0x37";

/** Chassis Control data byte (v2.0 §28.3). */
const CHASSIS_CONTROL: Readonly<Record<PowerAction, number>> = { off: 0x00, on: 0x01, cycle: 0x02, reset: 0x03 };

/** Boot option parameter 3: which events clear the boot-flag valid bit (v2.0 §28.13). */
const PARAM_BOOT_FLAG_CLEARING = 3;
/**
 * Bit 3 of parameter 3: do NOT clear the valid bit when the 60 s timeout expires. Without it a BMC
 * forgets a one-time PXE boot set a minute before the machine's POST reaches it (slow memory
 * training, a long power-off); the other bits (PEF, watchdog, reset, power button) stay 0, so a
 * power cycle still consumes a one-time flag as it should.
 */
const DONT_CLEAR_ON_TIMEOUT = 0x08;
/** Boot option parameter 5: the boot flags (v2.0 §28.13, table 28-14). */
const PARAM_BOOT_FLAGS = 5;
const BOOT_FLAG_VALID = 0x80;
const BOOT_FLAG_PERSISTENT = 0x40;
const BOOT_FLAG_EFI = 0x20;
/** Data byte 2, bits 5:2: the boot device selector. */
const BOOT_SELECTOR_MASK = 0x3c;
const BOOT_SELECTOR: Readonly<Record<"pxe" | "disk", number>> = { pxe: 0x04, disk: 0x08 };

/** Where to find ipmitool; tests and packagers may point elsewhere. */
export interface IpmiOptions extends Partial<BmcTimeouts> {
  ipmitool?: string;
  /**
   * RMCP+ cipher suite (`-C`); default ipmitool's choice (17 where offered, else 3). Old BMCs
   * that refuse 17 but do not say so need 3.
   */
  cipherSuite?: number;
}

/** The bytes of a `raw` answer (`" 01 05 80 04 00 00 00"`). */
export function parseRawBytes(stdout: string): number[] {
  const tokens = stdout.trim().split(/\s+/).filter(Boolean);
  return tokens.map((t) => {
    if (!/^[0-9a-fA-F]{2}$/.test(t))
      throw new BmcError("failed", `unexpected ipmitool output: ${JSON.stringify(stdout.slice(0, 120))}`);
    return Number.parseInt(t, 16);
  });
}

/** Data bytes of Set System Boot Options parameter 5 for a request. */
export function encodeBootFlags(device: "pxe" | "disk", persistent: boolean, efi: boolean): number[] {
  const flags = BOOT_FLAG_VALID | (persistent ? BOOT_FLAG_PERSISTENT : 0) | (efi ? BOOT_FLAG_EFI : 0);
  return [flags, BOOT_SELECTOR[device], 0x00, 0x00, 0x00];
}

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ");

/**
 * The answer of Get System Boot Options for parameter 5: parameter version, parameter selector,
 * then the five data bytes. A BMC that keeps the device but reports the valid bit clear (OpenIPMI's
 * `ipmi_sim` does) still says what the next boot will do, so the selector counts; only an
 * all-zero selector is "no override".
 */
export function decodeBootFlags(answer: number[]): BootOverride {
  if (answer.length < 4) throw new BmcError("failed", `short boot-flags answer: ${hex(answer)}`);
  const [flags, selectorByte] = [answer[2]!, answer[3]!];
  const selector = selectorByte & BOOT_SELECTOR_MASK;
  const device =
    selector === 0
      ? "none"
      : selector === BOOT_SELECTOR.pxe
        ? "pxe"
        : selector === BOOT_SELECTOR.disk
          ? "disk"
          : "other";
  return {
    device,
    persistent: device !== "none" && (flags & BOOT_FLAG_PERSISTENT) !== 0,
    efi: (flags & BOOT_FLAG_EFI) !== 0,
    raw: `boot flags ${hex(answer.slice(2, 7))}`,
  };
}

/** Completion codes (v2.0 §5.2) that mean "this BMC does not do that". */
const UNSUPPORTED_CODES = new Set([0x80, 0xc1, 0xc2, 0xc9, 0xcc, 0xd5]);

/**
 * ipmitool's failure, classified. It prints the same "Unable to establish IPMI v2 / RMCP+
 * session" for a dead address and a wrong password; with `-v` it also says which step failed:
 * RAKP 2 with a bad HMAC (wrong password) or an error status (unknown user), versus no answer
 * to Get Channel Authentication Capabilities (nothing there).
 */
export function classifyIpmitoolFailure(stderr: string, what: string): BmcError {
  const detail = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(
      (l) =>
        l &&
        !/^(Loading IANA|Unable to Get Channel Cipher|Running Get VSO|Invalid completion code received: Invalid command|Discovered IPMB|RAW REQ|RAW RSP|RAW REQUEST|[0-9a-f ]+$)/i.test(
          l,
        ),
    )
    .join("; ");
  if (
    /RAKP 2 HMAC is invalid|RAKP \d message indicates an error|unauthorized name|invalid role|Activate Session error|insufficient privilege|rsp=0xd4/i.test(
      stderr,
    )
  )
    return new BmcError("credentials", `${what}: the BMC refused the username or password (${detail})`);
  if (/invalid (authentication|integrity|confidentiality) algorithm/i.test(stderr))
    return new BmcError("unsupported", `${what}: the BMC does not offer the RMCP+ cipher suite asked for (${detail})`);
  // A command sent inside an open session that got no answer at all (no completion code): the BMC
  // took the session and then went quiet, a hang rather than an absence.
  if (/Unable to send RAW command/i.test(stderr) && !/rsp=0x/i.test(stderr))
    return new BmcError("timeout", `${what}: the BMC opened a session, then stopped answering (${detail})`);
  const code = /rsp=0x([0-9a-f]{2})/i.exec(stderr);
  if (code && UNSUPPORTED_CODES.has(Number.parseInt(code[1]!, 16)))
    return new BmcError("unsupported", `${what}: the BMC does not support it (${detail})`);
  if (
    /Get Auth Capabilities error|Error issuing Get Channel Authentication|Unable to establish|No response from remote|Address lookup|Name or service not known/i.test(
      stderr,
    )
  ) {
    // A session that was open and then went quiet is a hang, not an absence.
    if (
      /No response from remote controller|Unable to send RAW command/i.test(stderr) &&
      !/Unable to establish/i.test(stderr)
    )
      return new BmcError("timeout", `${what}: the BMC stopped answering (${detail})`);
    return new BmcError("unreachable", `${what}: no answer from the BMC (${detail})`);
  }
  return new BmcError("failed", `${what}: ${detail || "ipmitool failed"}`);
}

interface RunResult {
  stdout: string;
  stderr: string;
}

export class IpmitoolClient implements BmcClient {
  readonly protocol = "ipmi" as const;
  private readonly timeouts: BmcTimeouts;

  constructor(
    private readonly endpoint: BmcEndpoint,
    private readonly options: IpmiOptions = {},
  ) {
    this.timeouts = {
      attemptMs: options.attemptMs ?? DEFAULT_BMC_TIMEOUTS.attemptMs,
      attempts: options.attempts ?? DEFAULT_BMC_TIMEOUTS.attempts,
    };
  }

  async powerStatus(): Promise<PowerState> {
    const answer = await this.raw("power status", [NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS]);
    if (answer.length < 1) throw new BmcError("failed", "power status: empty chassis status");
    // Current power state, bit 0: system power is on (v2.0 §28.2).
    return (answer[0]! & 0x01) !== 0 ? "on" : "off";
  }

  async power(action: PowerAction): Promise<void> {
    // v2.0 §28.3: a power cycle of a machine that is off "has no effect" on many BMCs (others
    // answer 0xd5); the contract is "it ends up on, freshly booted", so from off it is power on.
    let command = action;
    if (action === "cycle" && (await this.powerStatus()) === "off") command = "on";
    await this.raw(`power ${action}`, [NETFN_CHASSIS, CMD_CHASSIS_CONTROL, byte(CHASSIS_CONTROL[command])]);
  }

  async setBootDevice(device: BootDevice, options?: BootOptions): Promise<BootDeviceResult> {
    if (device === "http")
      throw new BmcError("unsupported", "boot device http: IPMI has no UEFI HTTP boot device (use Redfish UefiHttp)");
    const requested = bootRequest(device, options);
    // The 60 s valid-bit timeout first, so the flag set next survives until the power cycle that
    // follows it. A BMC that refuses parameter 3 still gets the flag: it then must be cycled fast.
    await this.raw("disable the boot-flag timeout", [
      NETFN_CHASSIS,
      CMD_SET_BOOT_OPTIONS,
      byte(PARAM_BOOT_FLAG_CLEARING),
      byte(DONT_CLEAR_ON_TIMEOUT),
    ]).catch((error: unknown) => {
      if (!(error instanceof BmcError && error.failure === "unsupported")) throw error;
    });
    await this.raw(`boot device ${device}`, [
      NETFN_CHASSIS,
      CMD_SET_BOOT_OPTIONS,
      byte(PARAM_BOOT_FLAGS),
      ...encodeBootFlags(device, requested.persistent, requested.efi === true).map(byte),
    ]);
    return bootResult(requested, await this.getBootDevice());
  }

  async getBootDevice(): Promise<BootOverride> {
    const answer = await this.raw("read the boot flags", [
      NETFN_CHASSIS,
      CMD_GET_BOOT_OPTIONS,
      byte(PARAM_BOOT_FLAGS),
      "0x00",
      "0x00",
    ]);
    return decodeBootFlags(answer);
  }

  async identity(): Promise<BmcIdentity> {
    // IPMI knows the system GUID; host NIC MACs are not in the standard (only OEM commands), and
    // FRU serials are optional, so only the GUID is asked for.
    const answer = await this.raw("system GUID", [NETFN_APP, CMD_GET_SYSTEM_GUID]);
    return answer.length === 16 ? { uuid: ipmiGuidToUuid(answer), macs: [] } : { macs: [] };
  }

  /** One raw request with retries on unreachable/timeout; the answer's bytes. */
  private async raw(what: string, request: string[]): Promise<number[]> {
    const { stdout } = await this.run(what, ["raw", ...request]);
    return parseRawBytes(stdout);
  }

  private async run(what: string, command: string[]): Promise<RunResult> {
    let last: BmcError | undefined;
    for (let attempt = 1; attempt <= this.timeouts.attempts; attempt++) {
      try {
        return await this.runOnce(what, command);
      } catch (error) {
        if (!(error instanceof BmcError)) throw error;
        last = error;
        // Only a run that never opened a session is tried again: a wrong password stays wrong (and
        // retrying can lock the account), and a command that went unanswered may have been carried
        // out (a second power cycle is worse than an error).
        if (error.failure !== "unreachable") throw error;
      }
    }
    throw last!;
  }

  private async runOnce(what: string, command: string[]): Promise<RunResult> {
    const dir = await mkdtemp(join(tmpdir(), "centra-pxe-ipmi-"));
    try {
      const passwordFile = join(dir, "password");
      await writeFile(passwordFile, this.endpoint.password, { mode: 0o600 });
      return await spawnIpmitool(
        this.options.ipmitool ?? "ipmitool",
        this.args(passwordFile, command),
        this.timeouts.attemptMs,
        what,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private args(passwordFile: string, command: string[]): string[] {
    // ipmitool's own timer (-N seconds per packet, -R retries) sits inside ours so a dead
    // address ends in its own words ("Get Auth Capabilities error") before we have to kill it.
    const perPacket = Math.max(1, Math.floor(this.timeouts.attemptMs / 1000 / 4));
    const args = [
      "-v",
      "-I",
      "lanplus",
      "-H",
      this.endpoint.address,
      "-p",
      String(this.endpoint.port ?? defaultBmcPort("ipmi")),
      "-U",
      this.endpoint.username,
      "-f",
      passwordFile,
      "-N",
      String(perPacket),
      "-R",
      "1",
    ];
    const cipherSuite = this.endpoint.cipherSuite ?? this.options.cipherSuite;
    if (cipherSuite !== undefined) args.push("-C", String(cipherSuite));
    return [...args, ...command];
  }
}

function byte(value: number): string {
  return `0x${value.toString(16).padStart(2, "0")}`;
}

/**
 * Get System GUID's 16 bytes as a UUID string. IPMI v2.0 §22.14 sends the GUID least significant
 * byte first (the whole 16 bytes reversed against RFC 4122's order), which is how ipmitool's
 * `mc guid` prints it too.
 */
export function ipmiGuidToUuid(bytes: number[]): string {
  const h = hex([...bytes].reverse()).replace(/ /g, "");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function spawnIpmitool(binary: string, args: string[], timeoutMs: number, what: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < 65_536) stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < 65_536) stderr += d;
    });
    child.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error.code === "ENOENT"
          ? new BmcError("unsupported", `${what}: ${binary} is not installed (Debian: apt-get install ipmitool)`, {
              cause: error,
            })
          : new BmcError("failed", `${what}: cannot run ${binary}: ${error.message}`, { cause: error }),
      );
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      if (timedOut) {
        // Killed by our clock: a session that opened (RAKP went through) and then hung is a BMC
        // that stopped mid-answer; no session at all is one that never answered.
        const opened = /Running Get VSO|RAW REQ|Discovered IPMB/i.test(stderr) || stdout !== "";
        reject(new BmcError(opened ? "timeout" : "unreachable", `${what}: no answer within ${timeoutMs} ms`));
        return;
      }
      if (code === 0) resolve({ stdout, stderr });
      else reject(classifyIpmitoolFailure(stderr, what));
    });
  });
}
