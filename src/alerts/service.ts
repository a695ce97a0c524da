import { readFileSync } from "node:fs";
import type { Config } from "../config/schema.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import type { Logger } from "../log.js";
import type { NodeEvent, Store } from "../store/store.js";
import { SUCCESSES } from "../timeline/attempt.js";
import type { TimelinePart } from "../timeline/service.js";
import {
  alertmanagerBody,
  Deliveries,
  type DeliveryStats,
  signBody,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  webhookBody,
} from "./delivery.js";
import {
  abortedTransfersAlert,
  type Alert,
  type AlertChange,
  ALERT_NAMES,
  bootLoopAlert,
  CutTransfers,
  partDownAlert,
  provisioningFailedAlert,
} from "./rules.js";

export interface AlertsOptions {
  config: Config;
  logger: Logger;
  store: Pick<Store, "nodes">;
  onEvent(listener: (event: NodeEvent) => void): () => void;
  timeline: Pick<TimelinePart, "timeline" | "onVerdict">;
  /** Every part of the daemon (a part down is an alert). */
  health(): Record<string, ServiceHealth>;
  now?: () => number;
  /** How often health is checked, windows closed and firing alerts re-sent to Alertmanager; default 5 s. */
  checkMs?: number;
  /** Tests shorten the retry backoff. */
  backoff?: (attempt: number) => number;
}

export interface AlertsPart {
  service: Service;
  /** Alerts firing now. */
  active(): Alert[];
  /** Firing alerts by `alertname`, for /metrics. */
  firing(): Record<string, number>;
  deliveries(): DeliveryStats;
  /** Check health, close windows and re-send now (the timer does it every `checkMs`; tests call it). */
  evaluate(): void;
}

/** Alerts firing at once; past it new ones are dropped (logged, counted): a flood cannot grow the map. */
const MAX_ACTIVE = 1_000;

/**
 * Alerts on failed boots (issue 15): a provisioning attempt that failed (timeout, reported), a boot
 * loop, repeated transfers cut short, a part down. Each fires once and resolves once; receivers are
 * told of both: webhooks (signed JSON) and Alertmanager (`/api/v2/alerts`, re-sent every
 * `alerts.repeatEvery` while firing). They also show in /metrics (`centra_pxe_alerts_firing`).
 */
export function createAlerts(options: AlertsOptions): AlertsPart {
  const now = options.now ?? Date.now;
  const log = options.logger.child({ part: "alerts" });
  let config = options.config;
  let secrets = new Map<string, string>();
  const active = new Map<string, Alert>();
  const cuts = new CutTransfers();
  /** Since when each part has been down. */
  const downSince = new Map<string, number>();
  let lastRepeat = 0;
  let dropped = 0;
  let timer: NodeJS.Timeout | undefined;
  const unsubscribes: (() => void)[] = [];
  const deliveries = new Deliveries({
    retries: () => config.alerts.retries,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    onFailure: (request, why) => log.warn({ receiver: request.receiver, why }, "alert not delivered"),
  });

  const readSecrets = (next: Config) => {
    const read = new Map<string, string>();
    for (const hook of next.alerts.webhooks) {
      if (hook.secretFile === undefined) continue;
      let secret: string;
      try {
        secret = readFileSync(hook.secretFile, "utf8").trim();
      } catch (error) {
        throw new Error(
          `alerts.webhooks ${hook.url}: cannot read secretFile ${hook.secretFile}: ${(error as Error).message}`,
        );
      }
      if (secret.length < 16)
        throw new Error(`alerts.webhooks ${hook.url}: the secret in ${hook.secretFile} is shorter than 16 characters`);
      read.set(hook.url, secret);
    }
    return read;
  };

  const deliver = (changes: AlertChange[]) => {
    if (changes.length === 0) return;
    for (const hook of config.alerts.webhooks) {
      const secret = secrets.get(hook.url);
      deliveries.send({
        receiver: `webhook ${hook.url}`,
        url: hook.url,
        build: () => {
          const sentAt = now();
          const body = webhookBody(changes, sentAt);
          const timestamp = Math.floor(sentAt / 1000);
          const headers: Record<string, string> = {};
          if (secret) {
            headers[TIMESTAMP_HEADER] = String(timestamp);
            headers[SIGNATURE_HEADER] = signBody(secret, timestamp, body);
          }
          return { body, headers };
        },
      });
    }
    toAlertmanager(changes.map((c) => c.alert));
  };

  const toAlertmanager = (alerts: Alert[]) => {
    const am = config.alerts.alertmanager;
    if (!am || alerts.length === 0) return;
    const url = new URL("api/v2/alerts", am.url.endsWith("/") ? am.url : `${am.url}/`).toString();
    deliveries.send({
      receiver: `alertmanager ${am.url}`,
      url,
      build: () => ({ body: alertmanagerBody(alerts, now(), config.alerts.repeatEvery), headers: {} }),
    });
  };

  const fire = (alert: Alert) => {
    if (active.has(alert.key)) return;
    if (active.size >= MAX_ACTIVE) {
      dropped++;
      if (dropped === 1 || dropped % 1000 === 0)
        log.warn({ dropped }, `more than ${MAX_ACTIVE} alerts firing; new ones dropped`);
      return;
    }
    active.set(alert.key, alert);
    log.warn({ alert: alert.labels, summary: alert.annotations.summary }, "alert firing");
    deliver([{ status: "firing", alert }]);
  };

  const resolve = (key: string) => {
    const alert = active.get(key);
    if (!alert) return;
    active.delete(key);
    const resolved = { ...alert, endsAt: now() };
    log.info({ alert: alert.labels }, "alert resolved");
    deliver([{ status: "resolved", alert: resolved }]);
  };

  const onLifecycle = async (event: NodeEvent) => {
    if (event.kind === "removed") return resolve(`${ALERT_NAMES.provisioningFailed}/${event.nodeId}`);
    if (event.kind !== "transition") return;
    if (event.fromState === "failed" && event.toState !== "failed")
      return resolve(`${ALERT_NAMES.provisioningFailed}/${event.nodeId}`);
    const action = event.details.action;
    if (event.toState !== "failed" || (action !== "timeout" && action !== "callback-failed")) return;
    const node = await options.store.nodes.get(event.nodeId);
    const message = typeof event.details.message === "string" ? event.details.message : undefined;
    fire(
      provisioningFailedAlert({
        nodeId: event.nodeId,
        reason: action === "timeout" ? "timeout" : "reported",
        at: Date.parse(event.at),
        ...(node?.hostname ? { hostname: node.hostname } : {}),
        ...(node?.macs[0] ? { mac: node.macs[0] } : {}),
        ...(node?.profile ? { profile: node.profile } : {}),
        ...(message ? { message } : {}),
      }),
    );
  };

  /** Health, closed windows, Alertmanager's re-sends. */
  const check = () => {
    const t = now();
    for (const [part, health] of Object.entries(options.health())) {
      if (health.ok) {
        downSince.delete(part);
        resolve(`${ALERT_NAMES.partDown}/${part}`);
        continue;
      }
      const since = downSince.get(part) ?? t;
      downSince.set(part, since);
      if (t - since >= config.alerts.partDown.after) fire(partDownAlert(part, health.detail, since));
    }
    for (const alert of [...active.values()]) {
      const mac = alert.labels.mac;
      if (alert.labels.alertname === ALERT_NAMES.abortedTransfers && mac !== undefined) {
        const { count, window } = config.alerts.abortedTransfers;
        if (cuts.count(mac, t, window) < count) resolve(alert.key);
      } else if (alert.labels.alertname === ALERT_NAMES.bootLoop && mac !== undefined) {
        // A loop is over once the machine started no attempt for a whole window.
        const latest = options.timeline.timeline.history(mac).at(-1);
        if (!latest || t - latest.startedAt > config.alerts.bootLoop.window) resolve(alert.key);
      }
    }
    if (t - lastRepeat >= config.alerts.repeatEvery) {
      lastRepeat = t;
      toAlertmanager([...active.values()]);
    }
  };

  return {
    service: {
      name: "alerts",
      async start() {
        secrets = readSecrets(config);
        unsubscribes.push(
          options.onEvent((event) => {
            onLifecycle(event).catch((error: unknown) => log.error({ err: error }, "alert rule failed"));
          }),
          options.timeline.onVerdict((attempt, verdict) => {
            const key = `${ALERT_NAMES.bootLoop}/${attempt.mac}`;
            if (verdict.verdict === "boot-loop") fire(bootLoopAlert(attempt.mac, verdict.reason, now()));
            else if (SUCCESSES.has(verdict.verdict)) resolve(key);
          }),
          options.timeline.timeline.onStep((attempt, step) => {
            const cut =
              (step.source === "tftp" && (step.outcome === "aborted" || step.outcome === "failed") && step.bytes > 0) ||
              (step.source === "http" && !step.complete);
            if (!cut) return;
            const { count, window } = config.alerts.abortedTransfers;
            const seen = cuts.note(attempt.mac, now(), window, count);
            const what = step.source === "tftp" ? `TFTP ${step.file} ${step.outcome}` : `HTTP ${step.path} cut short`;
            if (seen >= count) fire(abortedTransfersAlert(attempt.mac, seen, window, what, now()));
          }),
        );
        timer = setInterval(check, options.checkMs ?? 5_000);
        timer.unref();
      },
      async stop() {
        if (timer) clearInterval(timer);
        timer = undefined;
        for (const unsubscribe of unsubscribes.splice(0)) unsubscribe();
        deliveries.stop();
      },
      check(next) {
        readSecrets(next);
      },
      reload(next) {
        secrets = readSecrets(next);
        config = next;
      },
      health: () => (timer ? { ok: true } : { ok: false, detail: "not started" }),
    },
    active: () => [...active.values()],
    firing() {
      const counts: Record<string, number> = Object.fromEntries(Object.values(ALERT_NAMES).map((name) => [name, 0]));
      for (const alert of active.values()) counts[alert.labels.alertname] = (counts[alert.labels.alertname] ?? 0) + 1;
      return counts;
    },
    deliveries: () => ({ ...deliveries.stats }),
    evaluate: check,
  };
}
