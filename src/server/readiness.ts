import { loadAddon } from "../native/load-addon.js";

/**
 * What the daemon tells its service manager (sd_notify(3), systemd.service(5) `Type=notify`):
 * `READY=1` once every part serves, `RELOADING=1` … `READY=1` around a SIGHUP, `STOPPING=1` on the
 * way out. Without `$NOTIFY_SOCKET` (a shell, a test, another supervisor) every call does nothing.
 */
export interface Readiness {
  ready(status: string): void;
  reloading(): void;
  stopping(): void;
}

interface SdNotifyAddon {
  notify(socketPath: string, message: string): void;
}

/** The readiness of a daemon whose manager listens on `socketPath` (`$NOTIFY_SOCKET`), or of none. */
export function createReadiness(socketPath: string | undefined, onError: (error: unknown) => void): Readiness {
  if (!socketPath) return { ready() {}, reloading() {}, stopping() {} };
  const send = (message: string): void => {
    try {
      loadAddon<SdNotifyAddon>("sd_notify", "readiness notification (NOTIFY_SOCKET)").notify(socketPath, message);
    } catch (error) {
      // A manager that stopped listening must not take the daemon down: it is still serving.
      onError(error);
    }
  };
  return {
    // STATUS= is what `systemctl status` shows next to the unit.
    ready: (status) => send(`READY=1\nSTATUS=${status.replace(/\n/g, " ")}`),
    // systemd ≥ 253 wants the CLOCK_MONOTONIC time of the reload with RELOADING=1 (Type=notify-reload);
    // Node's hrtime is that clock on Linux.
    reloading: () => send(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`),
    stopping: () => send("STOPPING=1"),
  };
}
