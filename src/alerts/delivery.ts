import { createHmac } from "node:crypto";
import type { Alert, AlertChange } from "./rules.js";
import { backoffMs } from "./rules.js";

/**
 * The wire forms of alerts and their delivery, retried with backoff. Webhook bodies are signed:
 *
 *   X-Centra-Timestamp: <Unix seconds>
 *   X-Centra-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *
 * The receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in constant
 * time, and refuses a timestamp more than a few minutes old (a replayed delivery), as Stripe's and
 * Slack's webhooks do. The README shows it in a few lines.
 */

export const SIGNATURE_HEADER = "x-centra-signature";
export const TIMESTAMP_HEADER = "x-centra-timestamp";

/** The signature header's value for `body` sent at `timestamp` (Unix seconds). */
export function signBody(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** What a webhook receives: one POST per batch of changes. */
export function webhookBody(changes: readonly AlertChange[], sentAt: number): string {
  return JSON.stringify({
    version: 1,
    sentAt: iso(sentAt),
    alerts: changes.map(({ status, alert }) => ({
      status,
      key: alert.key,
      labels: alert.labels,
      annotations: alert.annotations,
      startsAt: iso(alert.startsAt),
      ...(alert.endsAt !== undefined ? { endsAt: iso(alert.endsAt) } : {}),
    })),
  });
}

/**
 * Alertmanager's `POST /api/v2/alerts` body. A firing alert carries an `endsAt` a few repeats ahead:
 * were this server to die, Alertmanager resolves it on its own instead of showing it forever; each
 * re-send moves it on. A resolved alert's `endsAt` is when it resolved.
 */
export function alertmanagerBody(alerts: readonly Alert[], now: number, repeatEveryMs: number): string {
  return JSON.stringify(
    alerts.map((alert) => ({
      labels: alert.labels,
      annotations: alert.annotations,
      startsAt: iso(alert.startsAt),
      endsAt: iso(alert.endsAt ?? now + 4 * repeatEveryMs),
    })),
  );
}

export interface DeliveryRequest {
  /** For logs and metrics: `webhook <url>` or `alertmanager <url>`. */
  receiver: string;
  url: string;
  /** Built on each attempt, so a signature's timestamp is fresh on a retry. */
  build(): { body: string; headers: Record<string, string> };
}

export interface DeliveryStats {
  delivered: number;
  retried: number;
  /** Given up after every retry, or dropped because too many deliveries were pending. */
  failed: number;
  pending: number;
}

export interface DeliveryOptions {
  retries: () => number;
  /** Deliveries waiting or in flight at once; more are dropped (and counted), never queued without bound. */
  maxPending?: number;
  timeoutMs?: number;
  onFailure?(request: DeliveryRequest, why: string): void;
  /** Tests shorten the backoff. */
  backoff?: (attempt: number) => number;
}

/** Deliveries in flight, each retried with exponential backoff until it succeeds or runs out of retries. */
export class Deliveries {
  readonly stats: DeliveryStats = { delivered: 0, retried: 0, failed: 0, pending: 0 };
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly options: DeliveryOptions) {}

  send(request: DeliveryRequest): void {
    if (this.stopped) return;
    if (this.stats.pending >= (this.options.maxPending ?? 1_000)) {
      this.stats.failed++;
      this.options.onFailure?.(request, "too many deliveries pending");
      return;
    }
    this.stats.pending++;
    void this.attempt(request, 0);
  }

  /** Stop retrying (the daemon stops); what is in flight finishes on its own. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private async attempt(request: DeliveryRequest, attempt: number): Promise<void> {
    let why: string;
    try {
      const { body, headers } = request.build();
      const response = await fetch(request.url, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) {
        this.stats.delivered++;
        this.stats.pending--;
        return;
      }
      why = `answered ${response.status}`;
    } catch (error) {
      why = (error as Error).message;
    }
    if (this.stopped || attempt >= this.options.retries()) {
      this.stats.failed++;
      this.stats.pending--;
      this.options.onFailure?.(request, why);
      return;
    }
    this.stats.retried++;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        void this.attempt(request, attempt + 1);
      },
      (this.options.backoff ?? backoffMs)(attempt),
    );
    timer.unref();
    this.timers.add(timer);
  }
}
