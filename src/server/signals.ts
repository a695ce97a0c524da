/**
 * The daemon's signals, caught from its first instant. Node's default for SIGHUP and SIGTERM is to
 * die at once; a daemon still loading its modules or starting its parts would then lose a reload
 * request, or leave a half-bound socket behind. An inbox holds each signal until `serve` can act
 * on it, in the order they came. This module imports nothing, so the CLI can install it before
 * it loads anything heavy.
 */

export const DAEMON_SIGNALS = ["SIGHUP", "SIGTERM", "SIGINT"] as const;
export type DaemonSignal = (typeof DAEMON_SIGNALS)[number];

export class SignalInbox {
  private readonly pending: DaemonSignal[] = [];
  private handler: ((signal: DaemonSignal) => void) | undefined;
  private readonly listeners = new Map<DaemonSignal, () => void>();

  constructor() {
    for (const signal of DAEMON_SIGNALS) {
      const listener = () => this.deliver(signal);
      this.listeners.set(signal, listener);
      process.on(signal, listener);
    }
  }

  /** From now on hand every signal to `handler`; the ones that came before go first, in order. */
  drainTo(handler: (signal: DaemonSignal) => void): void {
    this.handler = handler;
    for (const signal of this.pending.splice(0)) handler(signal);
  }

  /** Give the signals back to Node's defaults. */
  close(): void {
    for (const [signal, listener] of this.listeners) process.off(signal, listener);
    this.listeners.clear();
    this.handler = undefined;
  }

  private deliver(signal: DaemonSignal): void {
    if (this.handler) this.handler(signal);
    else this.pending.push(signal);
  }
}

let early: SignalInbox | undefined;

/** Start holding the daemon's signals now (the CLI's first statement for `serve`). */
export function holdDaemonSignals(): void {
  early ??= new SignalInbox();
}

/** The inbox `holdDaemonSignals` opened, or a new one (a caller that did not hold early). */
export function takeDaemonSignals(): SignalInbox {
  const inbox = early ?? new SignalInbox();
  early = undefined;
  return inbox;
}
