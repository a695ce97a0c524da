/**
 * What an alert is and when one fires or resolves, as plain data and pure functions: the service
 * (service.ts) feeds them the lifecycle's events, the timeline's verdicts and the parts' health, and
 * delivers what they decide (delivery.ts).
 */

/** Alertmanager's convention: one `alertname` per kind, CamelCase. */
export const ALERT_NAMES = {
  provisioningFailed: "CentraPxeProvisioningFailed",
  bootLoop: "CentraPxeBootLoop",
  abortedTransfers: "CentraPxeAbortedTransfers",
  partDown: "CentraPxePartDown",
} as const;
export type AlertName = (typeof ALERT_NAMES)[keyof typeof ALERT_NAMES];

export interface Alert {
  /** One alert per subject: `alertname` and what it is about (a node, a MAC, a part). */
  key: string;
  labels: { alertname: AlertName; severity: "critical" | "warning" } & Record<string, string>;
  annotations: { summary: string; description: string };
  /** Unix ms. */
  startsAt: number;
  /** Unix ms; set once the alert resolved. */
  endsAt?: number;
}

/** What a receiver is told: an alert that started firing, or one that resolved. */
export interface AlertChange {
  status: "firing" | "resolved";
  alert: Alert;
}

/** The facts of a provisioning attempt that ended `failed` (a lifecycle `transition` event). */
export interface FailedProvisioning {
  nodeId: string;
  hostname?: string;
  mac?: string;
  profile?: string;
  /** `timeout` (no callback by the deadline) or `reported` (the installer called back `failed`). */
  reason: "timeout" | "reported";
  message?: string;
  at: number;
}

export function provisioningFailedAlert(failure: FailedProvisioning): Alert {
  const who = failure.hostname ?? failure.mac ?? failure.nodeId;
  const why =
    failure.reason === "timeout"
      ? "no callback from its installer before provisioning.timeout"
      : `its installer reported a failure${failure.message ? `: ${failure.message}` : ""}`;
  return {
    key: `${ALERT_NAMES.provisioningFailed}/${failure.nodeId}`,
    labels: {
      alertname: ALERT_NAMES.provisioningFailed,
      severity: "critical",
      node: failure.nodeId,
      reason: failure.reason,
      ...(failure.hostname ? { hostname: failure.hostname } : {}),
      ...(failure.mac ? { mac: failure.mac } : {}),
      ...(failure.profile ? { profile: failure.profile } : {}),
    },
    annotations: {
      summary: `provisioning of ${who} failed`,
      description: `${who} is failed: ${why}. See GET /api/v1/nodes/${failure.nodeId}/boots; reprovision it once fixed.`,
    },
    startsAt: failure.at,
  };
}

export function bootLoopAlert(
  mac: string,
  reason: string,
  at: number,
  node?: { id: string; hostname?: string },
): Alert {
  const who = node?.hostname ?? mac;
  return {
    key: `${ALERT_NAMES.bootLoop}/${mac}`,
    labels: {
      alertname: ALERT_NAMES.bootLoop,
      severity: "warning",
      mac,
      ...(node ? { node: node.id } : {}),
      ...(node?.hostname ? { hostname: node.hostname } : {}),
    },
    annotations: { summary: `${who} is in a boot loop`, description: reason },
    startsAt: at,
  };
}

export function abortedTransfersAlert(mac: string, count: number, windowMs: number, last: string, at: number): Alert {
  return {
    key: `${ALERT_NAMES.abortedTransfers}/${mac}`,
    labels: { alertname: ALERT_NAMES.abortedTransfers, severity: "warning", mac },
    annotations: {
      summary: `${mac}: ${count} transfers cut short`,
      description: `${count} TFTP or HTTP transfers of ${mac} were cut short within ${Math.round(windowMs / 60_000)} min; the last: ${last}`,
    },
    startsAt: at,
  };
}

export function partDownAlert(part: string, detail: string | undefined, since: number): Alert {
  return {
    key: `${ALERT_NAMES.partDown}/${part}`,
    labels: { alertname: ALERT_NAMES.partDown, severity: "critical", part },
    annotations: { summary: `${part} is down`, description: detail ?? `${part} is not serving` },
    startsAt: since,
  };
}

/**
 * Transfers cut short by one machine, within a sliding window: `note` a cut, `count` those still in
 * it. The window holds at most `limit` times per machine and `machines` machines (least recently
 * noted dropped first): a stranger aborting from many MACs costs a bounded map.
 */
export class CutTransfers {
  private readonly cuts = new Map<string, number[]>();

  constructor(private readonly machines = 1_000) {}

  note(mac: string, at: number, windowMs: number, limit: number): number {
    const kept = (this.cuts.get(mac) ?? []).filter((t) => t > at - windowMs);
    kept.push(at);
    while (kept.length > limit) kept.shift();
    this.cuts.delete(mac);
    this.cuts.set(mac, kept);
    while (this.cuts.size > this.machines) this.cuts.delete(this.cuts.keys().next().value as string);
    return kept.length;
  }

  count(mac: string, now: number, windowMs: number): number {
    return (this.cuts.get(mac) ?? []).filter((t) => t > now - windowMs).length;
  }
}

/** Delays between delivery attempts: 1 s, 2 s, 4 s, … up to a minute (exponential backoff). */
export function backoffMs(attempt: number): number {
  return Math.min(60_000, 1_000 * 2 ** attempt);
}
