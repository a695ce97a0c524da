import { EventEmitter } from "node:events";
import { normalizeMac } from "../config/primitives.js";
import type { Config } from "../config/schema.js";
import { NotFoundError } from "../errors.js";
import type { Logger } from "../log.js";
import { NodeConflict, type NodeEvent, type NodeFilter, type NodeRecord, type NodeSource, type NodeState, type Store } from "../store/store.js";
import { CallbackRejectedError, ConflictError, TransitionRefusedError } from "./errors.js";
import { decideTransition, type LifecycleAction } from "./lifecycle.js";
import type { NodeChanges } from "./node-input.js";
import { hashToken, randomId, randomSecret } from "./tokens.js";

/** Who asked for a change, recorded in its event (`token:ab12cd34 ops`, `config`, `dhcp`, …). */
export type Actor = string;

/** What DHCP tells the inventory about a network-boot client (src/dhcp SeenClient). */
export interface Sighting {
  mac: string;
  firmware?: string;
  uuid?: string;
  serial?: string;
  via: "dhcp" | "ipxe";
}

export interface Reservation {
  ipAddress?: string;
  hostname?: string;
}

export interface ProvisioningOptions {
  store: Store;
  config: Config;
  logger: Logger;
  now?: () => Date;
}

/** Config-owned fields: a node declared in the config file gets these from the file only. */
const CONFIG_OWNED = ["macs", "profile", "hostname", "ipAddress"] as const;

/** A known node's last-seen data is written at most this often, so a DHCP retry storm is not a write storm. */
const SIGHTING_WRITE_INTERVAL_MS = 60_000;

/**
 * SMBIOS UUIDs that identify nothing: empty, all zeros, all ones, and the placeholder that some
 * board vendors ship in every unit. Matching a machine by one of them would merge strangers.
 */
const MEANINGLESS_UUIDS = new Set(["", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "03000200-0400-0500-0006-000700080009"]);

export function meaningfulUuid(uuid: string | undefined): string | undefined {
  const normalised = uuid?.trim().toLowerCase();
  return normalised === undefined || MEANINGLESS_UUIDS.has(normalised) ? undefined : normalised;
}

/**
 * The provisioning orchestrator (PRODUCT.md §5): the inventory and its lifecycle over a Store.
 * Every change runs one at a time (an in-process queue) so a read-decide-write never interleaves
 * with another; every transition is appended as an event and published to live listeners.
 */
export class Provisioning {
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private currentConfig: Config;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly emitter = new EventEmitter();
  /** Every MAC of every node with an address or hostname: DHCP asks synchronously, per packet. */
  private reservations = new Map<string, Reservation>();
  private readonly sightingWrittenAt = new Map<string, number>();

  constructor(options: ProvisioningOptions) {
    this.store = options.store;
    this.logger = options.logger.child({ part: "provisioning" });
    this.now = options.now ?? (() => new Date());
    this.currentConfig = options.config;
    // SSE clients each add a listener; the default cap of 10 is a leak warning, not a limit we want.
    this.emitter.setMaxListeners(0);
  }

  get config(): Config {
    return this.currentConfig;
  }

  /** Live events, for the SSE stream. Returns the unsubscribe function. */
  onEvent(listener: (event: NodeEvent) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }

  /** DHCP's reservation for a MAC of a node in the inventory (`lookupNode`). */
  reservationFor(mac: string): Reservation | undefined {
    const normalised = normalizeMac(mac) ?? mac;
    return this.reservations.get(normalised);
  }

  // ---- reads ---------------------------------------------------------------------------------

  listNodes(filter?: NodeFilter): Promise<NodeRecord[]> {
    return this.store.nodes.list(filter);
  }

  /** A node by id, any of its MACs (any notation), or its hostname. */
  async getNode(ref: string): Promise<NodeRecord> {
    const found = await this.findNode(ref);
    if (!found) throw new NotFoundError(`node ${ref}`);
    return found;
  }

  async findNode(ref: string): Promise<NodeRecord | undefined> {
    const byId = await this.store.nodes.get(ref);
    if (byId) return byId;
    const mac = normalizeMac(ref);
    if (mac !== undefined) return this.store.nodes.findByMac(mac);
    return this.store.nodes.findByHostname(ref);
  }

  // ---- config ---------------------------------------------------------------------------------

  /**
   * Load the config's nodes into the inventory (at start and on every reload). The config wins
   * for what it declares: profile, hostname and address, taken from another node if need be. A
   * node the config no longer declares is kept, with its history, as an API-managed node.
   */
  applyConfig(config: Config): Promise<void> {
    return this.exclusive(async () => {
      this.currentConfig = config;
      const declared = new Set<string>();
      for (const declaration of Object.values(config.nodes)) {
        const existing = await this.store.nodes.findByMac(declaration.mac);
        const wanted: Partial<NodeRecord> = {
          profile: declaration.profile,
          hostname: declaration.hostname,
          ipAddress: declaration.ipAddress,
        };
        let node: NodeRecord;
        if (!existing) {
          const at = this.timestamp();
          node = { id: randomId("n"), macs: [declaration.mac], labels: {}, state: "ready", source: "config", stateChangedAt: at, createdAt: at, ...defined(wanted) };
          await this.writeClaiming(node, "create");
          await this.record({ nodeId: node.id, kind: "created", toState: "ready", details: { by: "config", mac: declaration.mac, profile: declaration.profile } });
        } else {
          node = { ...existing, ...wanted, source: "config" };
          for (const key of ["hostname", "ipAddress"] as const) if (wanted[key] === undefined) delete node[key];
          const changed = CONFIG_OWNED.some((k) => JSON.stringify(existing[k]) !== JSON.stringify(node[k])) || existing.source !== "config";
          let transitioned: NodeState | undefined;
          if (existing.state === "discovered") {
            node.state = "ready";
            node.stateChangedAt = this.timestamp();
            transitioned = "ready";
          }
          if (changed || transitioned) {
            await this.writeClaiming(node, "replace");
            if (changed) await this.record({ nodeId: node.id, kind: "updated", details: { by: "config", ...pick(node, CONFIG_OWNED) } });
            if (transitioned) await this.record({ nodeId: node.id, kind: "transition", fromState: existing.state, toState: transitioned, details: { action: "assign-profile", by: "config" } });
          }
        }
        declared.add(node.id);
      }
      for (const node of await this.store.nodes.list()) {
        if (node.source === "config" && !declared.has(node.id)) {
          await this.store.nodes.replace({ ...node, source: "api" });
          await this.record({ nodeId: node.id, kind: "undeclared", details: { by: "config", note: "no longer in the config file; kept as an API-managed node" } });
        }
      }
      await this.rebuildReservations();
    });
  }

  /** Write a config node, taking a hostname, address or UUID another node holds: the config wins. */
  private async writeClaiming(node: NodeRecord, how: "create" | "replace"): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (how === "create") await this.store.nodes.create(node);
        else await this.store.nodes.replace(node);
        return;
      } catch (error) {
        if (!(error instanceof NodeConflict) || error.field === "macs" || error.field === "id" || error.holder === undefined || attempt > 3) throw error;
        const holder = await this.store.nodes.get(error.holder);
        if (!holder) throw error;
        const field = error.field;
        const released = { ...holder };
        delete released[field];
        await this.store.nodes.replace(released);
        await this.record({ nodeId: holder.id, kind: "updated", details: { by: "config", [field]: null, note: `${field} ${error.value} is declared in the config for another node` } });
      }
    }
  }

  // ---- API changes ----------------------------------------------------------------------------

  /**
   * Register a machine. A MAC that DHCP or iPXE already discovered (the machine was powered on
   * before anyone registered it) is adopted: that node gets the changes, keeping its history.
   */
  createNode(changes: NodeChanges, actor: Actor): Promise<NodeRecord & { adopted?: true }> {
    return this.exclusive(async () => {
      const holders = new Map<string, NodeRecord>();
      for (const mac of changes.macs ?? []) {
        const holder = await this.store.nodes.findByMac(mac);
        if (holder) holders.set(holder.id, holder);
      }
      const [only] = holders.values();
      if (holders.size === 1 && only && only.source === "discovered" && only.state === "discovered") {
        const macs = [...only.macs, ...(changes.macs ?? []).filter((m) => !only.macs.includes(m))];
        const adopted = await this.applyChanges(only, { ...changes, macs }, actor, "api");
        return { ...adopted, adopted: true as const };
      }
      const at = this.timestamp();
      const state: NodeState = changes.profile ? "ready" : "discovered";
      const node: NodeRecord = {
        id: randomId("n"),
        macs: changes.macs ?? [],
        labels: changes.labels ?? {},
        state,
        source: "api",
        stateChangedAt: at,
        createdAt: at,
        // null (clear) means nothing on a new node.
        ...defined({
          profile: changes.profile ?? undefined,
          hostname: changes.hostname ?? undefined,
          ipAddress: changes.ipAddress ?? undefined,
          uuid: changes.uuid ?? undefined,
          imageVersion: changes.imageVersion ?? undefined,
        }),
      };
      await this.write(node, "create");
      await this.record({ nodeId: node.id, kind: "created", toState: state, details: { by: actor, ...describe(changes) } });
      return node;
    });
  }

  updateNode(ref: string, changes: NodeChanges, actor: Actor): Promise<NodeRecord> {
    return this.exclusive(async () => {
      const before = await this.getNode(ref);
      if (before.source === "config") {
        const owned = CONFIG_OWNED.find((field) => changes[field] !== undefined && JSON.stringify(changes[field]) !== JSON.stringify(before[field] ?? null));
        if (owned) throw new ConflictError(owned, `node ${before.id} is declared in the config file (nodes."${before.macs[0]}"); change its ${owned} there and reload`);
      }
      return this.applyChanges(before, changes, actor);
    });
  }

  /** Apply field changes to a stored node, with the profile's transition if any; `source` re-labels it (adoption). */
  private async applyChanges(before: NodeRecord, changes: NodeChanges, actor: Actor, source: NodeSource = before.source): Promise<NodeRecord> {
    const after: NodeRecord = { ...before, source };
    for (const [key, value] of Object.entries(changes) as [keyof NodeChanges, unknown][]) {
      if (value === null) delete after[key];
      else (after as unknown as Record<string, unknown>)[key] = value;
    }
    let action: LifecycleAction | undefined;
    if (before.profile === undefined && after.profile !== undefined) action = "assign-profile";
    if (before.profile !== undefined && after.profile === undefined) action = "clear-profile";
    if (action) {
      const decision = decideTransition(before.state, action, { hasProfile: after.profile !== undefined });
      if (!decision.allowed) throw new TransitionRefusedError(before.id, action, before.state, decision.reason);
      if (decision.to !== before.state) {
        after.state = decision.to;
        after.stateChangedAt = this.timestamp();
      }
    }
    await this.write(after, "replace");
    const kind = before.source === "discovered" && after.source === "api" ? "registered" : "updated";
    await this.record({ nodeId: after.id, kind, details: { by: actor, ...describe(changes) } });
    if (after.state !== before.state) {
      await this.record({ nodeId: after.id, kind: "transition", fromState: before.state, toState: after.state, details: { action, by: actor } });
    }
    return after;
  }

  removeNode(ref: string, actor: Actor): Promise<NodeRecord> {
    return this.exclusive(async () => {
      const node = await this.getNode(ref);
      if (node.source === "config") {
        throw new ConflictError("node", `node ${node.id} is declared in the config file (nodes."${node.macs[0]}"); remove it there and reload`);
      }
      await this.store.nodes.remove(node.id);
      await this.store.callbackTokens.revokeForNode(node.id);
      await this.record({ nodeId: node.id, kind: "removed", fromState: node.state, details: { by: actor, macs: node.macs, hostname: node.hostname ?? null } });
      await this.rebuildReservations();
      return node;
    });
  }

  /** `provision` (ready/failed only) or `reprovision` (also provisioned, or a stuck attempt). */
  provision(ref: string, actor: Actor, options: { reprovision?: boolean } = {}): Promise<NodeRecord> {
    return this.exclusive(async () => {
      const node = await this.getNode(ref);
      const action: LifecycleAction = options.reprovision ? "reprovision" : "provision";
      if (node.profile !== undefined && !Object.hasOwn(this.currentConfig.profiles, node.profile)) {
        throw new TransitionRefusedError(node.id, action, node.state, `its profile ${node.profile} is no longer in the config; set another one first`);
      }
      // A new attempt: tokens of an earlier one must not complete this one.
      await this.store.callbackTokens.revokeForNode(node.id);
      return this.transition(node, action, actor, {}, (next) => {
        next.provisioningId = randomId("p");
        next.provisionDeadline = new Date(this.now().getTime() + this.currentConfig.provisioning.timeout).toISOString();
      });
    });
  }

  retire(ref: string, actor: Actor): Promise<NodeRecord> {
    return this.exclusive(async () => {
      const node = await this.getNode(ref);
      await this.store.callbackTokens.revokeForNode(node.id);
      return this.transition(node, "retire", actor, {}, clearAttempt);
    });
  }

  reactivate(ref: string, actor: Actor): Promise<NodeRecord> {
    return this.exclusive(async () => this.transition(await this.getNode(ref), "reactivate", actor, {}, clearAttempt));
  }

  // ---- the installer's callback ---------------------------------------------------------------

  /**
   * The installed system reports back with the single-use token from its kernel command line.
   * `mac`, when given, must be one of the node's: a token copied to another machine is refused.
   */
  callback(request: { token: string | undefined; mac?: string; outcome: "succeeded" | "failed"; message?: string; remote?: string }): Promise<NodeRecord> {
    return this.exclusive(async () => {
      const { token } = request;
      const log = this.logger.child({ mac: request.mac, remote: request.remote });
      if (token === undefined || token === "") {
        log.warn("installer callback without a token");
        throw new CallbackRejectedError(401, "missing", "the callback needs its token: ?token=<centra.token> or Authorization: Bearer <centra.token>");
      }
      const result = await this.store.callbackTokens.consume(hashToken(token), this.timestamp());
      if (!result.ok) {
        const messages = {
          unknown: "the callback token is not valid (a newer provisioning attempt replaces older tokens)",
          used: "the callback token was already used",
          expired: "the callback token expired; reprovision the node",
        } as const;
        log.warn({ reason: result.reason, nodeId: result.token?.nodeId }, "installer callback refused");
        if (result.token) await this.record({ nodeId: result.token.nodeId, kind: "callback-rejected", details: { reason: result.reason, mac: request.mac ?? null, remote: request.remote ?? null } });
        throw new CallbackRejectedError(403, result.reason, messages[result.reason]);
      }
      const node = await this.store.nodes.get(result.token.nodeId);
      const mac = request.mac === undefined ? undefined : normalizeMac(request.mac);
      if (!node || (request.mac !== undefined && (mac === undefined || !node.macs.includes(mac)))) {
        await this.record({ nodeId: result.token.nodeId, kind: "callback-rejected", details: { reason: "other-node", mac: request.mac ?? null, remote: request.remote ?? null } });
        throw new CallbackRejectedError(403, "other-node", `the callback token does not belong to ${request.mac ?? "this node"}`);
      }
      if (node.state !== "provisioning" || node.provisioningId !== result.token.provisioningId) {
        throw new CallbackRejectedError(409, "not-provisioning", `node ${node.id} is ${node.state}; this token belongs to an earlier provisioning attempt`);
      }
      await this.store.callbackTokens.revokeForNode(node.id);
      const action: LifecycleAction = request.outcome === "failed" ? "callback-failed" : "callback-succeeded";
      return this.transition(
        node,
        action,
        `installer ${request.remote ?? ""}`.trim(),
        { provisioningId: node.provisioningId, ...(request.message ? { message: request.message } : {}) },
        clearAttempt,
      );
    });
  }

  // ---- time -----------------------------------------------------------------------------------

  /** Mark every node whose provisioning deadline passed `failed`. Returns the nodes it failed. */
  sweepTimeouts(): Promise<NodeRecord[]> {
    return this.exclusive(async () => {
      const now = this.timestamp();
      const failed: NodeRecord[] = [];
      for (const node of await this.store.nodes.list({ state: "provisioning" })) {
        if (node.provisionDeadline === undefined || node.provisionDeadline > now) continue;
        await this.store.callbackTokens.revokeForNode(node.id);
        const deadline = node.provisionDeadline;
        failed.push(await this.transition(node, "timeout", "timeout", { deadline, timeoutMs: this.currentConfig.provisioning.timeout }, clearAttempt));
        this.logger.warn({ nodeId: node.id, macs: node.macs, deadline }, "provisioning timed out without a callback; node failed");
      }
      return failed;
    });
  }

  // ---- what the network sees ------------------------------------------------------------------

  /**
   * DHCP or iPXE saw a machine. An unknown MAC becomes `discovered`, unless its UUID names a known
   * node (a replaced NIC, another port): then the MAC is added to that node.
   */
  observe(sighting: Sighting): Promise<NodeRecord> {
    return this.exclusive(async () => {
      const mac = normalizeMac(sighting.mac);
      if (mac === undefined) throw new NotFoundError(`MAC ${sighting.mac}`);
      const uuid = meaningfulUuid(sighting.uuid);
      const at = this.timestamp();
      let node = await this.store.nodes.findByMac(mac);
      if (!node && uuid !== undefined) {
        const byUuid = await this.store.nodes.findByUuid(uuid);
        if (byUuid) {
          node = { ...byUuid, macs: [...byUuid.macs, mac] };
          await this.store.nodes.replace(node);
          await this.record({ nodeId: node.id, kind: "mac-added", details: { mac, uuid, via: sighting.via } });
          await this.rebuildReservations();
        }
      }
      if (!node) {
        const created: NodeRecord = {
          id: randomId("n"),
          macs: [mac],
          labels: {},
          state: "discovered",
          source: "discovered",
          stateChangedAt: at,
          createdAt: at,
          lastSeenAt: at,
          ...defined({ uuid, firmware: sighting.firmware, serial: blankToUndefined(sighting.serial) }),
        };
        try {
          await this.store.nodes.create(created);
        } catch (error) {
          // Another node already claims this UUID with other MACs (cloned or placeholder UUIDs): record without it.
          if (!(error instanceof NodeConflict && error.field === "uuid")) throw error;
          delete created.uuid;
          await this.store.nodes.create(created);
        }
        this.sightingWrittenAt.set(created.id, Date.now());
        await this.record({ nodeId: created.id, kind: "discovered", toState: "discovered", details: { mac, via: sighting.via, ...defined({ firmware: sighting.firmware, uuid }) } });
        this.logger.info({ nodeId: created.id, mac, firmware: sighting.firmware, via: sighting.via }, "new machine discovered");
        return created;
      }
      const seen: NodeRecord = { ...node, lastSeenAt: at, ...defined({ firmware: sighting.firmware, uuid, serial: blankToUndefined(sighting.serial) }) };
      const identityChanged = seen.firmware !== node.firmware || seen.uuid !== node.uuid || seen.serial !== node.serial;
      const last = this.sightingWrittenAt.get(node.id) ?? 0;
      if (identityChanged || Date.now() - last >= SIGHTING_WRITE_INTERVAL_MS) {
        try {
          await this.store.nodes.replace(seen);
        } catch (error) {
          if (!(error instanceof NodeConflict)) throw error;
          this.logger.warn({ nodeId: node.id, err: error }, "sighting not recorded: its UUID belongs to another node");
          return node;
        }
        this.sightingWrittenAt.set(node.id, Date.now());
        return seen;
      }
      return node;
    });
  }

  /**
   * A node in `provisioning` is fetching its install script: a fresh single-use token bound to
   * this attempt, valid until the (extended) deadline. Each boot gets its own token, so a reboot
   * mid-install does not leave the new installer without one.
   */
  issueInstallToken(nodeId: string): Promise<{ token: string; node: NodeRecord } | undefined> {
    return this.exclusive(async () => {
      const node = await this.store.nodes.get(nodeId);
      if (!node || node.state !== "provisioning" || node.provisioningId === undefined) return undefined;
      const now = this.now();
      const deadline = new Date(now.getTime() + this.currentConfig.provisioning.timeout).toISOString();
      const token = randomSecret();
      await this.store.callbackTokens.issue({ hash: hashToken(token), nodeId: node.id, provisioningId: node.provisioningId, createdAt: now.toISOString(), expiresAt: deadline });
      // The clock restarts at each install boot: a machine powered on an hour after `provision` still gets the full time.
      const next = { ...node, provisionDeadline: deadline };
      await this.store.nodes.replace(next);
      await this.record({ nodeId: node.id, kind: "install-boot", details: { provisioningId: node.provisioningId, deadline } });
      return { token, node: next };
    });
  }

  /** Load the reservation cache (at start; the config load does it too). */
  start(): Promise<void> {
    return this.exclusive(() => this.rebuildReservations());
  }

  // ---- internals ------------------------------------------------------------------------------

  private async transition(
    node: NodeRecord,
    action: LifecycleAction,
    actor: Actor,
    details: Record<string, unknown>,
    mutate?: (next: NodeRecord) => void,
  ): Promise<NodeRecord> {
    const decision = decideTransition(node.state, action, { hasProfile: node.profile !== undefined });
    if (!decision.allowed) throw new TransitionRefusedError(node.id, action, node.state, decision.reason);
    const next: NodeRecord = { ...node, state: decision.to };
    if (decision.to !== node.state) next.stateChangedAt = this.timestamp();
    mutate?.(next);
    await this.store.nodes.replace(next);
    await this.record({
      nodeId: node.id,
      kind: "transition",
      fromState: node.state,
      toState: next.state,
      details: { action, by: actor, ...details, ...(next.provisioningId && next.provisioningId !== node.provisioningId ? { provisioningId: next.provisioningId } : {}) },
    });
    return next;
  }

  /** Create or replace a node from an API change, turning a uniqueness clash into a 409 naming the field. */
  private async write(node: NodeRecord, how: "create" | "replace"): Promise<void> {
    try {
      if (how === "create") await this.store.nodes.create(node);
      else await this.store.nodes.replace(node);
    } catch (error) {
      if (error instanceof NodeConflict) throw new ConflictError(error.field, `${error.value} already belongs to node ${error.holder ?? "?"}`);
      throw error;
    }
    await this.rebuildReservations();
  }

  private async record(event: Omit<NodeEvent, "seq" | "at">): Promise<NodeEvent> {
    const stored = await this.store.events.append({ ...event, at: this.timestamp() });
    this.emitter.emit("event", stored);
    return stored;
  }

  private async rebuildReservations(): Promise<void> {
    const next = new Map<string, Reservation>();
    for (const node of await this.store.nodes.list()) {
      if (node.ipAddress === undefined && node.hostname === undefined) continue;
      const reservation = defined({ ipAddress: node.ipAddress, hostname: node.hostname });
      for (const mac of node.macs) next.set(mac, reservation);
    }
    this.reservations = next;
  }

  private timestamp(): string {
    return this.now().toISOString();
  }

  private exclusive<T>(body: () => Promise<T>): Promise<T> {
    const run = this.queue.then(body, body);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function clearAttempt(next: NodeRecord): void {
  delete next.provisioningId;
  delete next.provisionDeadline;
}

/** The fields of an object that are not undefined (optional fields stay absent, not `undefined`). */
function defined<T extends Record<string, unknown>>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

function pick<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, value[k] ?? null]));
}

function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** An event's view of a change: what was set, null for what was cleared. */
function describe(changes: NodeChanges): Record<string, unknown> {
  return Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
}
