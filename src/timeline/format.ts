import type { BootAttemptView, BootStepView } from "./attempt.js";

/**
 * The boot timeline as text, for `centra-pxe nodes boots`: one line per attempt (verdict, reason,
 * phase durations), or one line per step of one attempt with its offset from the attempt's start.
 */

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function rate(bytes: number, ms: number): string {
  return ms > 0 ? `, ${size((bytes * 1000) / ms)}/s` : "";
}

export function formatBoots(boots: readonly BootAttemptView[]): string {
  if (boots.length === 0) return "no boot attempts seen (since the server started keeping them)\n";
  return boots
    .map((b) => {
      const where = [b.firmware, b.address, b.profile].filter(Boolean).join(" ");
      const phases = b.phases.map((p) => `${p.phase} ${seconds(p.ms)}`).join(" · ");
      return `#${b.attempt}  ${b.startedAt}  ${b.verdict}  ${where}\n    ${b.reason}\n${phases ? `    ${phases}\n` : ""}`;
    })
    .join("");
}

function describeStep(step: BootStepView): string {
  const s = step as unknown as Record<string, unknown> & BootStepView;
  switch (s.source) {
    case "dhcp": {
      const repeats = typeof s.repeats === "number" ? ` ×${s.repeats + 1}` : "";
      const answer = s.reply
        ? ` → ${s.reply}${s.address ? ` ${s.address}` : ""}`
        : s.ignored
          ? ` (not answered: ${s.ignored})`
          : "";
      const who = s.bootClient ? (s.userClass ? ` [${s.userClass}]` : "") : " [operating system]";
      return `dhcp  ${s.message}${answer}${repeats}${who}`;
    }
    case "tftp":
      return `tftp  ${s.file} ${s.outcome}: ${size(Number(s.bytes))} in ${seconds(Number(s.ms))}${rate(Number(s.bytes), Number(s.ms))}, ${s.retransmissions} retransmitted${s.reason ? ` (${s.reason})` : ""}`;
    case "http": {
      const decision = s.decision as { boot: string; profile?: string; install?: boolean } | undefined;
      const said = decision
        ? ` → ${decision.boot}${decision.profile ? ` ${decision.profile}` : ""}${decision.install ? " (install)" : ""}`
        : "";
      return `${s.scheme === "https" ? "https" : "http "} ${s.kind} ${s.path} ${s.complete ? s.status : "cut short"}: ${size(Number(s.bytes))} in ${seconds(Number(s.ms))}${rate(Number(s.bytes), Number(s.ms))}${said}`;
    }
    default:
      return `life  ${s.kind}${s.message ? `: ${s.message}` : ""}`;
  }
}

export function formatAttempt(attempt: BootAttemptView): string {
  const start = Date.parse(attempt.startedAt);
  const lines = (attempt.steps ?? []).map((step) => {
    const offset = (Date.parse(step.at) - start) / 1000;
    return `  +${offset.toFixed(3).padStart(8)} s  ${describeStep(step)}\n`;
  });
  return `${formatBoots([attempt])}${lines.join("")}${attempt.stepsDropped ? `  (${attempt.stepsDropped} more steps not kept)\n` : ""}`;
}
