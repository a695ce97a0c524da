import { normalizeMac } from "../config/primitives.js";
import type { Config } from "../config/schema.js";
import { NotFoundError } from "../errors.js";
import type { NodeState } from "../lifecycle/lifecycle.js";
import { NodeConflict, type NodeBmc, type NodeFilter, type NodeRecord, type NodeSource } from "../store/store.js";
import { type Actor, defined, type InventoryCore } from "./core.js";
import { missingPassword, publicBmc, storedBmc } from "./bmc-settings.js";
import { ConflictError, TransitionRefusedError, ValidationError } from "./errors.js";
import { decideTransition, type LifecycleAction } from "../lifecycle/lifecycle.js";
import type { NodeChanges } from "./node-input.js";
import { randomId } from "./tokens.js";

/** Config-owned fields: a node declared in the config file gets these from the file only. */
const CONFIG_OWNED = ["macs", "profile", "hostname", "ipAddress"] as const;
/** What a config sync compares and reports: the owned fields and the richer keys a node may declare. */
const CONFIG_SYNCED = [...CONFIG_OWNED, "uuid", "serial", "labels", "bmc"] as const;

/**
 * The inventory: what machines there are and what they are to be, changed only by an admin (the
 * config file, the API, the CLI). The network never edits it: a sighting that claims a known
 * node's UUID is a conflict for an admin to approve (`adoptMac`), never acted on.
 */
export class Inventory {
  constructor(private readonly core: InventoryCore) {}

  get config(): Config {
    return this.core.config;
  }

  listNodes(filter?: NodeFilter): Promise<NodeRecord[]> {
    return this.core.store.nodes.list(filter);
  }

  getNode(ref: string): Promise<NodeRecord> {
    return this.core.getNode(ref);
  }

  findNode(ref: string): Promise<NodeRecord | undefined> {
    return this.core.findNode(ref);
  }

  /**
   * Add a MAC to a node: the admin's answer to an `identity-conflict` (a new NIC, another port).
   * A MAC only discovered so far is taken from its placeholder node, which is removed; a MAC of a
   * registered node is a conflict (remove it there first).
   */
  adoptMac(ref: string, rawMac: string, actor: Actor): Promise<NodeRecord> {
    return this.core.exclusive(async () => {
      const node = await this.core.getNode(ref);
      const mac = normalizeMac(rawMac);
      if (mac === undefined) throw new NotFoundError(`MAC ${JSON.stringify(rawMac)}`);
      if (node.macs.includes(mac)) return node;
      const holder = await this.core.store.nodes.findByMac(mac);
      if (holder && !(holder.source === "discovered" && holder.state === "discovered")) {
        throw new ConflictError("macs", `${mac} belongs to node ${holder.id}; remove it there first`);
      }
      if (holder) {
        await this.core.store.nodes.remove(holder.id);
        await this.core.record({
          nodeId: holder.id,
          kind: "removed",
          fromState: holder.state,
          details: { by: actor, macs: holder.macs, note: `MAC adopted by node ${node.id}` },
        });
      }
      const next: NodeRecord = { ...node, macs: [...node.macs, mac] };
      await this.write(next, "replace");
      await this.core.record({ nodeId: node.id, kind: "mac-added", details: { by: actor, mac } });
      return next;
    });
  }

  applyConfig(config: Config): Promise<void> {
    return this.core.exclusive(async () => {
      this.core.config = config;
      const declared = new Set<string>();
      for (const declaration of Object.values(config.nodes)) {
        const existing = await this.core.store.nodes.findByMac(declaration.mac);
        const wanted: Partial<NodeRecord> = {
          profile: declaration.profile,
          hostname: declaration.hostname,
          ipAddress: declaration.ipAddress,
          // The richer keys are the config's only where the file writes them: a seed-form node keeps the
          // MACs an admin adopted, the UUID and serial its firmware reported, the labels the API set.
          ...(declaration.macs !== undefined ? { macs: [declaration.mac, ...declaration.macs] } : {}),
          ...(declaration.uuid !== undefined ? { uuid: declaration.uuid } : {}),
          ...(declaration.serial !== undefined ? { serial: declaration.serial } : {}),
          ...(declaration.labels !== undefined ? { labels: declaration.labels } : {}),
          // A BMC in the file is the file's (its password always a file reference there).
          ...(declaration.bmc !== undefined ? { bmc: { ...declaration.bmc } } : {}),
        };
        let node: NodeRecord;
        if (!existing) {
          const at = this.core.timestamp();
          node = {
            id: randomId("n"),
            macs: [declaration.mac],
            labels: {},
            state: "ready",
            source: "config",
            stateChangedAt: at,
            createdAt: at,
            ...defined(wanted),
          };
          node = await this.claimMacs(node);
          await this.writeClaiming(node, "create");
          await this.core.record({
            nodeId: node.id,
            kind: "created",
            toState: "ready",
            details: { by: "config", mac: declaration.mac, profile: declaration.profile },
          });
        } else {
          node = { ...existing, ...wanted, source: "config" };
          for (const key of ["hostname", "ipAddress"] as const) if (wanted[key] === undefined) delete node[key];
          const changed =
            CONFIG_SYNCED.some((k) => JSON.stringify(existing[k]) !== JSON.stringify(node[k])) ||
            existing.source !== "config";
          let transitioned: NodeState | undefined;
          if (existing.state === "discovered") {
            node.state = "ready";
            node.stateChangedAt = this.core.timestamp();
            transitioned = "ready";
          }
          if (changed || transitioned) {
            node = await this.claimMacs(node);
            await this.writeClaiming(node, "replace");
            if (changed)
              await this.core.record({
                nodeId: node.id,
                kind: "updated",
                details: { by: "config", ...redactBmc(pick(node, CONFIG_SYNCED)) },
              });
            if (transitioned)
              await this.core.record({
                nodeId: node.id,
                kind: "transition",
                fromState: existing.state,
                toState: transitioned,
                details: { action: "assign-profile", by: "config" },
              });
          }
        }
        declared.add(node.id);
      }
      for (const node of await this.core.store.nodes.list()) {
        if (node.source === "config" && !declared.has(node.id)) {
          await this.core.store.nodes.replace({ ...node, source: "api" });
          await this.core.record({
            nodeId: node.id,
            kind: "undeclared",
            details: { by: "config", note: "no longer in the config file; kept as an API-managed node" },
          });
        }
      }
      await this.core.rebuildReservations();
    });
  }

  /**
   * A config node's other MACs, taken from whoever holds them: a machine only discovered so far (its
   * placeholder node goes, as with adoptMac), or a node with more MACs than this one. A MAC that is
   * the only one of another node stays there; this node is written without it, and the event says so.
   */
  private async claimMacs(node: NodeRecord): Promise<NodeRecord> {
    const kept: string[] = [];
    for (const mac of node.macs) {
      const holder = await this.core.store.nodes.findByMac(mac);
      if (!holder || holder.id === node.id) {
        kept.push(mac);
      } else if (holder.source === "discovered" && holder.state === "discovered") {
        await this.core.store.nodes.remove(holder.id);
        await this.core.record({
          nodeId: holder.id,
          kind: "removed",
          fromState: holder.state,
          details: {
            by: "config",
            macs: holder.macs,
            note: `MAC ${mac} is declared in the config for node ${node.id}`,
          },
        });
        kept.push(mac);
      } else if (holder.macs.length > 1) {
        await this.core.store.nodes.replace({ ...holder, macs: holder.macs.filter((m) => m !== mac) });
        await this.core.record({
          nodeId: holder.id,
          kind: "updated",
          details: { by: "config", macs: holder.macs.filter((m) => m !== mac), note: `MAC ${mac} moved to ${node.id}` },
        });
        kept.push(mac);
      } else {
        await this.core.record({
          nodeId: node.id,
          kind: "updated",
          details: { by: "config", note: `MAC ${mac} is the only MAC of node ${holder.id}; remove it there first` },
        });
      }
    }
    return kept.length === node.macs.length || kept.length === 0 ? node : { ...node, macs: kept };
  }

  /** Write a config node, taking a hostname, address or UUID another node holds: the config wins. */
  private async writeClaiming(node: NodeRecord, how: "create" | "replace"): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (how === "create") await this.core.store.nodes.create(node);
        else await this.core.store.nodes.replace(node);
        return;
      } catch (error) {
        if (
          !(error instanceof NodeConflict) ||
          error.field === "macs" ||
          error.field === "id" ||
          error.holder === undefined ||
          attempt > 3
        )
          throw error;
        const holder = await this.core.store.nodes.get(error.holder);
        if (!holder) throw error;
        const field = error.field;
        const released = { ...holder };
        delete released[field];
        await this.core.store.nodes.replace(released);
        await this.core.record({
          nodeId: holder.id,
          kind: "updated",
          details: {
            by: "config",
            [field]: null,
            note: `${field} ${error.value} is declared in the config for another node`,
          },
        });
      }
    }
  }

  // ---- API changes ----------------------------------------------------------------------------

  /**
   * Register a machine. A MAC that DHCP or iPXE already discovered (the machine was powered on
   * before anyone registered it) is adopted: that node gets the changes, keeping its history.
   */
  createNode(changes: NodeChanges, actor: Actor): Promise<NodeRecord & { adopted?: true }> {
    return this.core.exclusive(async () => {
      const holders = new Map<string, NodeRecord>();
      for (const mac of changes.macs ?? []) {
        const holder = await this.core.store.nodes.findByMac(mac);
        if (holder) holders.set(holder.id, holder);
      }
      const [only] = holders.values();
      if (holders.size === 1 && only && only.source === "discovered" && only.state === "discovered") {
        const macs = [...only.macs, ...(changes.macs ?? []).filter((m) => !only.macs.includes(m))];
        const adopted = await this.applyChanges(only, { ...changes, macs }, actor, "api");
        return { ...adopted, adopted: true as const };
      }
      const at = this.core.timestamp();
      const state: NodeState = changes.profile ? "ready" : "discovered";
      const id = randomId("n");
      if (changes.bmc) {
        const missing = missingPassword(changes.bmc, undefined);
        if (missing) throw new ValidationError([missing]);
      }
      const node: NodeRecord = {
        id,
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
          serial: changes.serial ?? undefined,
          bmc: changes.bmc ? await storedBmc(this.core.store, id, changes.bmc) : undefined,
        }),
      };
      await this.write(node, "create");
      await this.core.record({
        nodeId: node.id,
        kind: "created",
        toState: state,
        details: { by: actor, ...redactBmc(defined(changes)) },
      });
      return node;
    });
  }

  updateNode(ref: string, changes: NodeChanges, actor: Actor): Promise<NodeRecord> {
    return this.core.exclusive(async () => {
      const before = await this.core.getNode(ref);
      if (before.source === "config") {
        const owned = CONFIG_OWNED.find(
          (field) =>
            changes[field] !== undefined && JSON.stringify(changes[field]) !== JSON.stringify(before[field] ?? null),
        );
        if (owned)
          throw new ConflictError(
            owned,
            `node ${before.id} is declared in the config file (nodes."${before.macs[0]}"); change its ${owned} there and reload`,
          );
      }
      return this.applyChanges(before, changes, actor);
    });
  }

  /** Apply field changes to a stored node, with the profile's transition if any; `source` re-labels it (adoption). */
  private async applyChanges(
    before: NodeRecord,
    changes: NodeChanges,
    actor: Actor,
    source: NodeSource = before.source,
  ): Promise<NodeRecord> {
    const after: NodeRecord = { ...before, source };
    for (const [key, value] of Object.entries(changes) as [keyof NodeChanges, unknown][]) {
      if (key === "bmc") continue;
      if (value === null) delete after[key];
      else (after as unknown as Record<string, unknown>)[key] = value;
    }
    if (changes.bmc === null) delete after.bmc;
    else if (changes.bmc !== undefined) {
      const missing = missingPassword(changes.bmc, before.bmc);
      if (missing) throw new ValidationError([missing]);
      after.bmc = await storedBmc(this.core.store, before.id, changes.bmc, before.bmc);
    }
    let action: LifecycleAction | undefined;
    if (before.profile === undefined && after.profile !== undefined) action = "assign-profile";
    if (before.profile !== undefined && after.profile === undefined) action = "clear-profile";
    if (action) {
      const decision = decideTransition(before.state, action, { hasProfile: after.profile !== undefined });
      if (!decision.allowed) throw new TransitionRefusedError(before.id, action, before.state, decision.reason);
      if (decision.to !== before.state) {
        after.state = decision.to;
        after.stateChangedAt = this.core.timestamp();
      }
    }
    await this.write(after, "replace");
    const kind = before.source === "discovered" && after.source === "api" ? "registered" : "updated";
    await this.core.record({ nodeId: after.id, kind, details: { by: actor, ...redactBmc(defined(changes)) } });
    if (after.state !== before.state) {
      await this.core.record({
        nodeId: after.id,
        kind: "transition",
        fromState: before.state,
        toState: after.state,
        details: { action, by: actor },
      });
    }
    return after;
  }

  removeNode(ref: string, actor: Actor): Promise<NodeRecord> {
    return this.core.exclusive(async () => {
      const node = await this.core.getNode(ref);
      if (node.source === "config") {
        throw new ConflictError(
          "node",
          `node ${node.id} is declared in the config file (nodes."${node.macs[0]}"); remove it there and reload`,
        );
      }
      await this.core.store.nodes.remove(node.id);
      await this.core.store.callbackTokens.revokeForNode(node.id);
      await this.core.record({
        nodeId: node.id,
        kind: "removed",
        fromState: node.state,
        details: { by: actor, macs: node.macs, hostname: node.hostname ?? null },
      });
      await this.core.rebuildReservations();
      return node;
    });
  }

  /** Create or replace a node from an API change, turning a uniqueness clash into a conflict naming the field. */
  private async write(node: NodeRecord, how: "create" | "replace"): Promise<void> {
    try {
      if (how === "create") await this.core.store.nodes.create(node);
      else await this.core.store.nodes.replace(node);
    } catch (error) {
      if (error instanceof NodeConflict)
        throw new ConflictError(error.field, `${error.value} already belongs to node ${error.holder ?? "?"}`);
      throw error;
    }
    await this.core.rebuildReservations();
  }
}

/**
 * Event details with a BMC shown as every read shows it: an event is kept forever and streamed to
 * every admin, so neither the password nor where it is held goes in.
 */
function redactBmc<T extends { bmc?: unknown }>(details: T): Omit<T, "bmc"> & { bmc?: unknown } {
  const bmc = details.bmc;
  if (bmc === undefined || bmc === null) return details;
  const { password: _password, ...kept } = bmc as NodeBmc & { password?: string };
  return { ...details, bmc: publicBmc(kept) };
}

function pick<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, value[k] ?? null]));
}
