import { EventEmitter } from "node:events";
import { normalizeMac } from "../config/primitives.js";
import type { Config } from "../config/schema.js";
import { NotFoundError } from "../errors.js";
import type { Logger } from "../log.js";
import type { NodeEvent, NodeRecord, Store } from "../store/store.js";

/** Who asked for a change, recorded in its event (`token:ab12cd34 ops`, `config`, `dhcp`, …). */
export type Actor = string;

/** What DHCP gives a node of the inventory (yiaddr, option 12). */
export interface Reservation {
  ipAddress?: string;
  hostname?: string;
}

export interface InventoryCoreOptions {
  store: Store;
  config: Config;
  logger: Logger;
  now?: () => Date;
}

/**
 * What the inventory, the lifecycle and the sightings share: the store, the config in force, one
 * queue so a read-decide-write never interleaves with another, the event log and its live
 * listeners, and DHCP's reservation cache.
 */
export class InventoryCore {
  readonly store: Store;
  readonly logger: Logger;
  readonly now: () => Date;
  config: Config;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly emitter = new EventEmitter();
  /** Every MAC of every node with an address or hostname: DHCP asks synchronously, per packet. */
  private reservations = new Map<string, Reservation>();
  /** Every MAC of every node with a profile: DHCP picks the boot chain by it, per packet. */
  private profiles = new Map<string, string>();

  constructor(options: InventoryCoreOptions) {
    this.store = options.store;
    this.logger = options.logger.child({ part: "provisioning" });
    this.now = options.now ?? (() => new Date());
    this.config = options.config;
    // SSE subscribers are capped by the API (api.maxEventStreams), not by the emitter's leak warning.
    this.emitter.setMaxListeners(0);
  }

  /** Live events, for the SSE stream. Returns the unsubscribe function. */
  onEvent(listener: (event: NodeEvent) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }

  /** DHCP's reservation for a MAC of a node in the inventory (`lookupNode`). */
  reservationFor(mac: string): Reservation | undefined {
    return this.reservations.get(normalizeMac(mac) ?? mac);
  }

  /** The profile of the node that holds `mac` (for its boot chain, src/boot/boot-chain.ts). */
  profileFor(mac: string): string | undefined {
    return this.profiles.get(normalizeMac(mac) ?? mac);
  }

  /** A node by id, any of its MACs (any notation), or its hostname. */
  async findNode(ref: string): Promise<NodeRecord | undefined> {
    const byId = await this.store.nodes.get(ref);
    if (byId) return byId;
    const mac = normalizeMac(ref);
    if (mac !== undefined) return this.store.nodes.findByMac(mac);
    return this.store.nodes.findByHostname(ref);
  }

  async getNode(ref: string): Promise<NodeRecord> {
    const found = await this.findNode(ref);
    if (!found) throw new NotFoundError(`node ${ref}`);
    return found;
  }

  async record(event: Omit<NodeEvent, "seq" | "at">): Promise<NodeEvent> {
    const stored = await this.store.events.append({ ...event, at: this.timestamp() });
    this.publish([stored]);
    return stored;
  }

  /** Hand stored events to live listeners. */
  publish(events: readonly NodeEvent[]): void {
    for (const event of events) this.emitter.emit("event", event);
  }

  async rebuildReservations(): Promise<void> {
    const next = new Map<string, Reservation>();
    const profiles = new Map<string, string>();
    for (const node of await this.store.nodes.list()) {
      if (node.profile !== undefined) for (const mac of node.macs) profiles.set(mac, node.profile);
      if (node.ipAddress === undefined && node.hostname === undefined) continue;
      const reservation = defined({ ipAddress: node.ipAddress, hostname: node.hostname });
      for (const mac of node.macs) next.set(mac, reservation);
    }
    this.reservations = next;
    this.profiles = profiles;
  }

  timestamp(): string {
    return this.now().toISOString();
  }

  /** Run `body` after every change queued before it. */
  exclusive<T>(body: () => Promise<T>): Promise<T> {
    const run = this.queue.then(body, body);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** The fields of an object that are not undefined (optional fields stay absent, not `undefined`). */
export function defined<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

/** Forget the provisioning attempt on a node leaving `provisioning`. */
export function clearAttempt(next: NodeRecord): void {
  delete next.provisioningId;
  delete next.provisionDeadline;
}
