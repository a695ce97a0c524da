import type { BootDecision, BootObservation, HttpFileKind, TftpOutcome } from "../contracts/boot-observation.js";

/**
 * One boot attempt of one machine (one MAC) and the pure judgements over it: its verdict and its
 * phases. The collector (collector.ts) appends steps; everything here reads them and decides.
 */

/** One thing a part saw during an attempt; `at` is when it began (Unix ms), `ms` how long it took. */
export type BootStep = DhcpStep | TftpStep | HttpStep | LifecycleStep;

export interface DhcpStep {
  source: "dhcp";
  at: number;
  /** `DISCOVER`, `REQUEST` */
  message: string;
  reply?: string;
  ignored?: string;
  address?: string;
  userClass?: string;
  /** false: the DHCP client of an operating system (the installer's own), not firmware. */
  bootClient: boolean;
  /** The same exchange seen again right after (a ROM retransmitting its DISCOVER): folded into one step. */
  repeats?: number;
}

export interface TftpStep {
  source: "tftp";
  at: number;
  ms: number;
  file: string;
  outcome: TftpOutcome;
  bytes: number;
  size?: number;
  retransmissions: number;
  reason?: string;
}

export interface HttpStep {
  source: "http";
  at: number;
  ms: number;
  kind: HttpFileKind;
  path: string;
  /** Absent in timelines saved before it was recorded. */
  scheme?: "http" | "https";
  method: string;
  status: number;
  bytes: number;
  size?: number;
  complete: boolean;
  decision?: BootDecision;
}

/** What the lifecycle said during the attempt: the install script's first fetch, the callback, the deadline. */
export interface LifecycleStep {
  source: "lifecycle";
  at: number;
  kind: "install-boot" | "callback-succeeded" | "callback-failed" | "callback-rejected" | "timeout";
  message?: string;
}

/** A boot attempt as the collector keeps it (times in Unix ms). */
export interface BootAttemptRecord {
  /** Increasing over the whole server (not per machine), so `/boots/{attempt}` names one attempt. */
  attempt: number;
  mac: string;
  startedAt: number;
  updatedAt: number;
  firmware?: string;
  arch?: number;
  address?: string;
  /** From the per-machine script's decision. */
  profile?: string;
  steps: BootStep[];
  /** Steps not kept once `steps` was full (a machine stuck retrying forever). */
  stepsDropped: number;
  /** The final verdict once it was told to the metrics and alerts (so a restart does not tell it again). */
  settled?: BootVerdict;
}

export const BOOT_VERDICTS = [
  "in-progress",
  "installed",
  "install-failed",
  "booted",
  "local-disk",
  "menu",
  "refused",
  "stuck-after-kernel",
  "timed-out",
  "download-failed",
  "tftp-aborted",
  "tftp-failed",
  "no-bootloader",
  "dhcp-incomplete",
  "boot-loop",
] as const;

/**
 * - `in-progress`: still moving (or waiting for the installer's callback within the timeout).
 * - `installed`: the installer called back `ok`; `install-failed`: it called back `failed`.
 * - `booted`: kernel and initrd downloaded whole, no install expected (a selector's image, a menu pick).
 * - `local-disk`: a provisioned machine sent to its disk; `menu`: an unknown machine shown the menu.
 * - `refused`: the boot decision refused (retired, no image, unidentifiable).
 * - `stuck-after-kernel`: kernel and initrd downloaded, then no callback within `provisioning.timeout`.
 * - `timed-out`: the provisioning deadline passed before the kernel was even fetched.
 * - `download-failed`: a kernel, initrd or script download was cut short or refused, and nothing followed.
 * - `tftp-aborted` / `tftp-failed`: the bootloader never arrived over TFTP (client ERROR / our timeout or a refusal).
 * - `no-bootloader`: DHCP acknowledged, then nothing fetched; `dhcp-incomplete`: no ACK at all.
 * - `boot-loop`: this attempt is one of `bootLoop.attempts` within `bootLoop.window` that got nowhere (not installed, booted nor sent to its disk).
 */
export type BootVerdict = (typeof BOOT_VERDICTS)[number];

export type BootPhaseName = "dhcp" | "tftp" | "scripts" | "kernel" | "initrd" | "install";

export interface BootPhase {
  phase: BootPhaseName;
  start: number;
  end: number;
}

export interface VerdictContext {
  now: number;
  /** `provisioning.timeout`: how long an install may run before it is called stuck. */
  provisioningTimeoutMs: number;
  /** How long without news before a boot that stopped short is judged where it stopped. */
  stallMs: number;
  /** The start times of this machine's earlier attempts that did not end well (any order). */
  earlierStarts: readonly number[];
  bootLoop: { attempts: number; windowMs: number };
}

export interface Verdict {
  verdict: BootVerdict;
  /** In words, for the operator: what happened last, and what is missing. */
  reason: string;
  /** Waiting will not change it (only new steps can): everything but `in-progress` and a loop still moving. */
  final: boolean;
}

const isHttp = (s: BootStep): s is HttpStep => s.source === "http";
const isTftp = (s: BootStep): s is TftpStep => s.source === "tftp";
const isDhcp = (s: BootStep): s is DhcpStep => s.source === "dhcp";
const isLifecycle = (s: BootStep): s is LifecycleStep => s.source === "lifecycle";
const ok = (s: HttpStep) => s.complete && s.status < 400;
const endOf = (s: BootStep) => s.at + ("ms" in s ? s.ms : 0);

/** The last successful download of `kind` in the attempt. */
function fetched(steps: readonly BootStep[], kind: HttpFileKind): HttpStep | undefined {
  return steps
    .filter(isHttp)
    .filter((s) => s.kind === kind && ok(s) && s.method !== "HEAD")
    .at(-1);
}

/**
 * The file a step handed the machine in full, when it is one a bootloader comes by: a TFTP transfer
 * that completed (not a ROM's `tsize` probe, which it ends with an ERROR), or a whole GET of a
 * `/boot/ipxe/` file (not UEFI HTTP boot's HEAD for the size). Undefined for anything else.
 */
export function deliveredBootloader(step: BootStep | BootObservation): string | undefined {
  if (step.source === "tftp") return step.outcome === "completed" ? step.file : undefined;
  if (step.source === "http" && step.kind === "bootloader" && ok(step) && step.method !== "HEAD") return step.path;
  return undefined;
}

/**
 * The verdict of one attempt. Pure: the same steps, context and clock give the same answer, so the
 * API, the alerts and the metrics agree, and it is tested as a table (attempt.test.ts).
 */
export function verdictOf(attempt: BootAttemptRecord, context: VerdictContext): Verdict {
  const judged = baseVerdict(attempt, context);
  const base: Verdict = { ...judged, final: judged.verdict !== "in-progress" };
  if (SUCCESSES.has(base.verdict) || base.verdict === "install-failed") return base;
  // Many starts in a short time with nothing good to show: the machine reboots before it gets anywhere.
  const windowStart = attempt.startedAt - context.bootLoop.windowMs;
  const inWindow = context.earlierStarts.filter((t) => t >= windowStart && t < attempt.startedAt).length + 1;
  if (inWindow < context.bootLoop.attempts) return base;
  return {
    verdict: "boot-loop",
    reason: `${inWindow} boot attempts within ${Math.round(context.bootLoop.windowMs / 60_000)} min; this one: ${base.reason}`,
    final: base.final,
  };
}

/** A boot that ended badly; `refused` is the lifecycle's own choice (a retired machine), not a failure. */
export const FAILED_VERDICTS: ReadonlySet<BootVerdict> = new Set<BootVerdict>([
  "install-failed",
  "stuck-after-kernel",
  "timed-out",
  "download-failed",
  "tftp-aborted",
  "tftp-failed",
  "no-bootloader",
  "dhcp-incomplete",
  "boot-loop",
]);

/** Verdicts that are a good end. */
export const SUCCESSES: ReadonlySet<BootVerdict> = new Set(["installed", "booted", "local-disk", "menu"]);

function baseVerdict(attempt: BootAttemptRecord, context: VerdictContext): Omit<Verdict, "final"> {
  const steps = attempt.steps;
  const last = steps.at(-1);
  const quietFor = context.now - (last ? endOf(last) : attempt.startedAt);
  const stalled = quietFor >= context.stallMs;
  const lifecycle = steps.filter(isLifecycle);
  const kernel = fetched(steps, "kernel");
  const initrd = fetched(steps, "initrd");
  const installBoot = lifecycle.find((s) => s.kind === "install-boot");

  // What the installer said is the last word on an install.
  const outcome = lifecycle.filter((s) => s.kind === "callback-succeeded" || s.kind === "callback-failed").at(-1);
  if (outcome?.kind === "callback-succeeded") return { verdict: "installed", reason: "the installer called back ok" };
  if (outcome?.kind === "callback-failed")
    return { verdict: "install-failed", reason: `the installer reported a failure${said(outcome.message)}` };
  if (lifecycle.some((s) => s.kind === "timeout")) {
    return kernel && initrd
      ? {
          verdict: "stuck-after-kernel",
          reason: "kernel and initrd were downloaded, then no callback before the provisioning deadline",
        }
      : { verdict: "timed-out", reason: `the provisioning deadline passed ${whereStopped(steps)}` };
  }

  const decision = steps
    .filter(isHttp)
    .filter((s) => s.kind === "machine-script" && s.decision)
    .at(-1)?.decision;
  if (decision?.boot === "localdisk" && !kernel) return { verdict: "local-disk", reason: "sent to its local disk" };
  if (decision?.boot === "none" || decision?.boot === "unavailable")
    return { verdict: "refused", reason: `the boot script refused${said(decision.reason)}` };

  if (kernel && initrd) {
    if (installBoot || decision?.install) {
      const since = Math.max(endOf(kernel), endOf(initrd));
      if (context.now - since >= context.provisioningTimeoutMs)
        return {
          verdict: "stuck-after-kernel",
          reason: "kernel and initrd were downloaded, then no callback within provisioning.timeout",
        };
      return { verdict: "in-progress", reason: "installing: kernel and initrd downloaded, waiting for the callback" };
    }
    return { verdict: "booted", reason: "kernel and initrd downloaded" };
  }

  if (!stalled) return { verdict: "in-progress", reason: `last: ${describe(last)}` };

  // Stopped short: judge by the last thing that happened.
  if (decision?.boot === "menu" && !kernel) return { verdict: "menu", reason: "shown the boot menu, nothing fetched" };
  const lastHttp = steps.filter(isHttp).at(-1);
  if (lastHttp && !ok(lastHttp))
    return {
      verdict: "download-failed",
      reason: `${lastHttp.path} ${lastHttp.complete ? `answered ${lastHttp.status}` : `cut short after ${lastHttp.bytes} bytes`}`,
    };
  if (kernel || initrd || lastHttp)
    return { verdict: "download-failed", reason: `stopped after ${describe(lastHttp ?? last)}` };
  const tftp = steps.filter(isTftp);
  if (tftp.length && !tftp.some((s) => s.outcome === "completed")) {
    const lastTftp = tftp.at(-1)!;
    return {
      verdict: lastTftp.outcome === "aborted" ? "tftp-aborted" : "tftp-failed",
      reason: `TFTP ${lastTftp.file}: ${lastTftp.outcome}${said(lastTftp.reason)}`,
    };
  }
  if (tftp.length) return { verdict: "download-failed", reason: `stopped after ${describe(tftp.at(-1))}` };
  const dhcp = steps.filter(isDhcp);
  if (dhcp.some((s) => s.reply === "ACK"))
    return { verdict: "no-bootloader", reason: "DHCP acknowledged, then no bootloader was fetched" };
  return {
    verdict: "dhcp-incomplete",
    reason: dhcp.some((s) => s.reply === "OFFER") ? "offered, never requested" : "no DHCP answer",
  };
}

function said(message: string | undefined): string {
  return message ? `: ${message}` : "";
}

function whereStopped(steps: readonly BootStep[]): string {
  const last = steps.filter((s) => s.source !== "lifecycle").at(-1);
  return last ? `after ${describe(last)}` : "before the machine was seen";
}

/** A step in a few words, for reasons. */
export function describe(step: BootStep | undefined): string {
  if (!step) return "nothing";
  switch (step.source) {
    case "dhcp":
      return `${step.message}${step.reply ? ` → ${step.reply}` : ""}`;
    case "tftp":
      return `TFTP ${step.file} ${step.outcome}`;
    case "http":
      return `HTTP ${step.path} ${step.complete ? step.status : "cut short"}`;
    case "lifecycle":
      return step.kind;
  }
}

/**
 * The phases of an attempt for a picture: each from its first step's start to its last step's
 * end. `install` runs from the end of the initrd to the callback (or now, while it is awaited).
 */
export function phasesOf(attempt: BootAttemptRecord, now: number): BootPhase[] {
  const spans = new Map<BootPhaseName, BootPhase>();
  const extend = (phase: BootPhaseName, start: number, end: number) => {
    const span = spans.get(phase);
    if (!span) spans.set(phase, { phase, start, end });
    else {
      span.start = Math.min(span.start, start);
      span.end = Math.max(span.end, end);
    }
  };
  let initrdEnd: number | undefined;
  let installEnd: number | undefined;
  for (const step of attempt.steps) {
    switch (step.source) {
      case "dhcp":
        if (step.bootClient) extend("dhcp", step.at, step.at);
        break;
      case "tftp":
        extend("tftp", step.at, endOf(step));
        break;
      case "http":
        if (step.kind === "kernel" || step.kind === "initrd") extend(step.kind, step.at, endOf(step));
        else if (step.kind === "bootloader") extend("tftp", step.at, endOf(step));
        else extend("scripts", step.at, endOf(step));
        if (step.kind === "initrd" && ok(step)) initrdEnd = endOf(step);
        break;
      case "lifecycle":
        if (step.kind !== "install-boot" && step.kind !== "callback-rejected") installEnd = step.at;
        break;
    }
  }
  if (initrdEnd !== undefined) extend("install", initrdEnd, installEnd ?? now);
  const order: BootPhaseName[] = ["dhcp", "tftp", "scripts", "kernel", "initrd", "install"];
  return order.flatMap((phase) => (spans.has(phase) ? [spans.get(phase)!] : []));
}

/** A step as the API shows it: ISO times. */
export type BootStepView = Omit<BootStep, "at"> & { at: string };

/** An attempt as `GET /api/v1/nodes/{ref}/boots` shows it (the OpenAPI `BootAttempt` schema). */
export interface BootAttemptView {
  attempt: number;
  mac: string;
  nodeId?: string;
  startedAt: string;
  updatedAt: string;
  firmware?: string;
  arch?: number;
  address?: string;
  profile?: string;
  verdict: BootVerdict;
  reason: string;
  /** Whether waiting can still change the verdict (`in-progress` is the only open one). */
  final: boolean;
  phases: { phase: BootPhaseName; start: string; end: string; ms: number }[];
  /** Only on `/boots/{attempt}`; the list leaves them out. */
  steps?: BootStepView[];
  stepsDropped: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function viewOf(
  attempt: BootAttemptRecord,
  verdict: Verdict,
  now: number,
  options: { steps: boolean; nodeId?: string },
): BootAttemptView {
  const view: BootAttemptView = {
    attempt: attempt.attempt,
    mac: attempt.mac,
    ...(options.nodeId !== undefined ? { nodeId: options.nodeId } : {}),
    startedAt: iso(attempt.startedAt),
    updatedAt: iso(attempt.updatedAt),
    ...(attempt.firmware !== undefined ? { firmware: attempt.firmware } : {}),
    ...(attempt.arch !== undefined ? { arch: attempt.arch } : {}),
    ...(attempt.address !== undefined ? { address: attempt.address } : {}),
    ...(attempt.profile !== undefined ? { profile: attempt.profile } : {}),
    verdict: verdict.verdict,
    reason: verdict.reason,
    final: verdict.final,
    phases: phasesOf(attempt, now).map((p) => ({
      phase: p.phase,
      start: iso(p.start),
      end: iso(p.end),
      ms: p.end - p.start,
    })),
    stepsDropped: attempt.stepsDropped,
  };
  if (options.steps) view.steps = attempt.steps.map((s) => ({ ...s, at: iso(s.at) }));
  return view;
}
