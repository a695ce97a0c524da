import type { Server } from "node:http";
import type { Socket } from "node:net";
import { unmappedAddress } from "../config/primitives.js";

/**
 * Connections at once, per source address. A boot client holds one or two (iPXE reuses one
 * kept-alive connection for its script, kernel and initrd); a stranger who opens hundreds from one
 * address would otherwise take every place the global cap (`server.maxConnections`) leaves.
 * Pure bookkeeping: the edge below asks `admit` on each new connection and calls `release` when
 * it closes.
 */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();
  private openTotal = 0;

  /** Admits a connection from `address` if it has fewer than `limit` open (0: no limit). */
  admit(address: string, limit: number): boolean {
    const current = this.open.get(address) ?? 0;
    if (limit > 0 && current >= limit) return false;
    this.open.set(address, current + 1);
    this.openTotal++;
    return true;
  }

  release(address: string): void {
    const current = this.open.get(address) ?? 0;
    if (current === 0) return;
    this.openTotal--;
    if (current === 1) this.open.delete(address);
    else this.open.set(address, current - 1);
  }

  /** Open connections from `address`. */
  count(address: string): number {
    return this.open.get(address) ?? 0;
  }

  /** Open connections from every address. */
  get total(): number {
    return this.openTotal;
  }

  /** Addresses with at least one open connection. */
  get addresses(): number {
    return this.open.size;
  }
}

/** Connections closed as they arrived, by reason, since the service started. */
export interface RefusedConnections {
  /** Over `http.maxConnectionsPerAddress`. */
  perAddress: number;
  /** Over `http.maxConnections` (closed by Node before any byte was read). */
  total: number;
}

/** Limits read on every new connection, so a reload applies to the next one. */
export interface ConnectionLimits {
  maxConnectionsPerAddress: number;
}

/**
 * `::ffff:10.0.0.5` and `10.0.0.5` are one client: a dual-stack listener reports IPv4 peers in the
 * mapped form, and a cap that counted them apart could be doubled by switching forms.
 */
export function clientAddressKey(address: string | undefined): string {
  return address === undefined ? "" : unmappedAddress(address);
}

/**
 * Enforce the per-address cap on `server` and count what both caps refuse. A refused connection is
 * closed at once, before the HTTP parser has read a byte of it: there is nothing to answer yet, and
 * a stranger gets no more from us than a closed socket.
 */
export function guardConnections(
  server: Server,
  limits: () => ConnectionLimits,
  onRefused: (reason: keyof RefusedConnections, remote: string) => void,
): ConnectionCounter {
  const counter = new ConnectionCounter();
  server.on("connection", (socket: Socket) => {
    const address = clientAddressKey(socket.remoteAddress);
    if (!counter.admit(address, limits().maxConnectionsPerAddress)) {
      onRefused("perAddress", address);
      socket.destroy();
      return;
    }
    socket.once("close", () => counter.release(address));
  });
  // Node closes connections over server.maxConnections itself and says so with 'drop' (Node 18.6+).
  server.on("drop", (data?: { remoteAddress?: string }) => onRefused("total", clientAddressKey(data?.remoteAddress)));
  return counter;
}
