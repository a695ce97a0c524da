import { normalizeMac } from "../config/primitives.js";
import type { Sighting } from "../contracts/sighting.js";
import type { NodeEvent, NodeRecord, SightingBatch } from "../store/store.js";
import { defined, type InventoryCore } from "./core.js";
import { randomId } from "./tokens.js";

export type { Sighting } from "../contracts/sighting.js";

export interface SightingStats {
  /** Sightings written to the inventory. */
  recorded: number;
  /** Sightings dropped because the budget was spent (a flood of new MACs). */
  dropped: number;
  /** Waiting for the next batch. */
  pending: number;
  /** MACs whose last sighting is remembered (bounded, however many MACs a flood invents). */
  remembered: number;
}

export interface SightingOptions {
  /** How long a batch gathers sightings before its one commit; default 25 ms. */
  batchMs?: number;
  /** Bound on the per-MAC memory (last sighting, last conflict); default 50,000 MACs. */
  maxRememberedMacs?: number;
}

/**
 * SMBIOS UUIDs that identify nothing: empty, all zeros, all ones, and the placeholder that some
 * board vendors ship in every unit. Matching a machine by one of them would merge strangers.
 */
const MEANINGLESS_UUIDS = new Set([
  "",
  "00000000-0000-0000-0000-000000000000",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "03000200-0400-0500-0006-000700080009",
]);

/** SMBIOS serials that board vendors leave in every unit: matching on them would flag strangers. */
const MEANINGLESS_SERIALS = new Set([
  "",
  "0",
  "00000000",
  "none",
  "n/a",
  "default string",
  "to be filled by o.e.m.",
  "system serial number",
  "not specified",
  "0123456789",
]);

export function meaningfulSerial(serial: string | undefined): string | undefined {
  const trimmed = serial?.trim();
  return trimmed === undefined || MEANINGLESS_SERIALS.has(trimmed.toLowerCase()) ? undefined : trimmed;
}

export function meaningfulUuid(uuid: string | undefined): string | undefined {
  const normalised = uuid?.trim().toLowerCase();
  return normalised === undefined || MEANINGLESS_UUIDS.has(normalised) ? undefined : normalised;
}

/** A MAC's sighting is written at most this often when nothing about it changed: a DHCP retry storm is not a write storm. */
const SIGHTING_WRITE_INTERVAL_MS = 60_000;
/** An identity conflict (a new MAC claiming a known node's UUID) is recorded once per MAC per this interval. */
const CONFLICT_EVENT_INTERVAL_MS = 60 * 60_000;
/** Sightings written per transaction; the event loop gets a turn between two. */
const SIGHTINGS_PER_COMMIT = 32;
/** Bound on the per-MAC memory; beyond it entries older than the write interval are forgotten. */
const MAX_REMEMBERED_MACS = 50_000;

/**
 * The inventory's side of what the network sees. A sighting never blocks its caller: it is
 * budgeted (a token bucket over `provisioning.sightingsPerSecond`/`sightingBurst`; drops are
 * counted), coalesced per MAC, and written with every other sighting of its batch in one
 * transaction, so a flood of new MACs costs one commit per batch instead of one fsync each.
 */
export class Sightings {
  private pending = new Map<string, Sighting>();
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly lastReported = new Map<string, { at: number; identity: string }>();
  private readonly conflictReportedAt = new Map<string, number>();
  private bucket: { tokens: number; at: number } | undefined;
  private readonly counts = { recorded: 0, dropped: 0 };
  private readonly batchMs: number;
  private readonly maxRemembered: number;

  constructor(
    private readonly core: InventoryCore,
    options: SightingOptions = {},
  ) {
    this.batchMs = options.batchMs ?? 25;
    this.maxRemembered = options.maxRememberedMacs ?? MAX_REMEMBERED_MACS;
  }

  stats(): SightingStats {
    return { ...this.counts, pending: this.pending.size, remembered: this.lastReported.size };
  }

  /**
   * Take a sighting. Resolves once it is written (or at once when it was coalesced or dropped);
   * never rejects: a failed write is logged, and the machine is seen again on its next packet.
   */
  report(sighting: Sighting): Promise<void> {
    const mac = normalizeMac(sighting.mac);
    if (mac === undefined) return Promise.resolve();
    const at = this.core.now().getTime();
    const identity = `${sighting.firmware ?? ""}|${meaningfulUuid(sighting.uuid) ?? ""}|${sighting.serial?.trim() ?? ""}`;
    const last = this.lastReported.get(mac);
    if (!this.pending.has(mac)) {
      if (last && last.identity === identity && at - last.at < SIGHTING_WRITE_INTERVAL_MS) return Promise.resolve();
      if (!this.takeBudget(at)) {
        this.counts.dropped++;
        return Promise.resolve();
      }
    }
    this.remember(mac, at, identity);
    this.pending.set(mac, { ...this.pending.get(mac), ...definedSighting(sighting), mac });
    this.timer ??= setTimeout(() => void this.flush(), this.batchMs);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Write every pending sighting now, in one transaction. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = [...this.pending.values()];
    const waiters = this.waiters;
    this.pending = new Map();
    this.waiters = [];
    if (batch.length === 0) return;
    try {
      // One transaction per slice, and a turn of the event loop between slices: a commit of a
      // few dozen rows holds the loop for milliseconds, a commit of the whole flood would not.
      for (let start = 0; start < batch.length; start += SIGHTINGS_PER_COMMIT) {
        if (start > 0) await new Promise((resolve) => setImmediate(resolve));
        const slice = batch.slice(start, start + SIGHTINGS_PER_COMMIT);
        try {
          await this.core.exclusive(() => this.write(slice));
          this.counts.recorded += slice.length;
        } catch (error) {
          this.core.logger.error({ err: error, sightings: slice.length }, "could not record sightings");
        }
      }
    } finally {
      for (const resolve of waiters) resolve();
    }
  }

  /**
   * Remove machines that were only ever discovered and have not been seen for `discoveredTtl`:
   * an inventory the network can grow must also shrink by itself.
   */
  expire(): Promise<NodeRecord[]> {
    const { core } = this;
    return core.exclusive(async () => {
      const cutoff = new Date(core.now().getTime() - core.config.provisioning.discoveredTtl).toISOString();
      const expired: NodeRecord[] = [];
      for (const node of await core.store.nodes.list({ state: "discovered", seenBefore: cutoff })) {
        if (node.source !== "discovered") continue;
        await core.store.nodes.remove(node.id);
        await core.record({
          nodeId: node.id,
          kind: "expired",
          fromState: node.state,
          details: {
            macs: node.macs,
            lastSeenAt: node.lastSeenAt ?? null,
            ttlMs: core.config.provisioning.discoveredTtl,
          },
        });
        expired.push(node);
      }
      if (expired.length)
        core.logger.info(
          { count: expired.length },
          "discovered machines not seen for provisioning.discoveredTtl removed",
        );
      return expired;
    });
  }

  private async write(batch: readonly Sighting[]): Promise<void> {
    const { core } = this;
    const at = core.timestamp();
    const writes: SightingBatch = { created: [], seen: [], events: [] };
    const uuidsTaken = new Set<string>();
    const discovered: { id: string; mac: string; via: string }[] = [];
    for (const sighting of batch) {
      const mac = sighting.mac;
      const uuid = meaningfulUuid(sighting.uuid);
      const serial = blankToUndefined(sighting.serial);
      const known = await core.store.nodes.findByMac(mac);
      if (known) {
        writes.seen.push({ id: known.id, lastSeenAt: at, ...defined({ firmware: sighting.firmware, uuid, serial }) });
        continue;
      }
      // A new MAC claiming a UUID the inventory knows: a replaced NIC, or someone copying what the
      // machine broadcasts. Only an admin can tell, so record the claim and give the MAC nothing
      // of that node (`centra-pxe nodes adopt NODE MAC` approves it).
      const holder = uuid === undefined ? undefined : await core.store.nodes.findByUuid(uuid);
      const bySerial =
        holder || meaningfulSerial(serial) === undefined ? undefined : await core.store.nodes.findBySerial(serial!);
      if (holder) this.conflict(writes.events, holder, mac, { uuid: uuid! }, sighting.via, at);
      else if (bySerial) this.conflict(writes.events, bySerial, mac, { serial: serial! }, sighting.via, at);
      const keepUuid = uuid !== undefined && !holder && !uuidsTaken.has(uuid);
      if (keepUuid) uuidsTaken.add(uuid);
      const id = randomId("n");
      writes.created.push({
        id,
        macs: [mac],
        labels: {},
        state: "discovered",
        source: "discovered",
        stateChangedAt: at,
        createdAt: at,
        lastSeenAt: at,
        ...defined({ uuid: keepUuid ? uuid : undefined, firmware: sighting.firmware, serial }),
      });
      writes.events.push({
        nodeId: id,
        kind: "discovered",
        toState: "discovered",
        at,
        details: { mac, via: sighting.via, ...defined({ firmware: sighting.firmware, uuid }) },
      });
      discovered.push({ id, mac, via: sighting.via });
    }
    const stored: NodeEvent[] = await core.store.recordSightings(writes);
    core.publish(stored);
    // One line per machine for a handful, one line for a flood.
    if (discovered.length <= 5)
      for (const d of discovered) core.logger.info({ nodeId: d.id, mac: d.mac, via: d.via }, "new machine discovered");
    else core.logger.info({ count: discovered.length }, "new machines discovered");
  }

  private conflict(
    events: SightingBatch["events"],
    holder: NodeRecord,
    mac: string,
    claim: { uuid: string } | { serial: string },
    via: string,
    at: string,
  ): void {
    const now = this.core.now().getTime();
    const last = this.conflictReportedAt.get(mac);
    if (last !== undefined && now - last < CONFLICT_EVENT_INTERVAL_MS) return;
    // The MACs are the network's: bounded like lastReported, oldest first (an evicted MAC's next
    // conflict is recorded again, which the sighting budget still paces).
    this.conflictReportedAt.delete(mac);
    forgetOldest(this.conflictReportedAt, this.maxRemembered - 1);
    this.conflictReportedAt.set(mac, now);
    events.push({
      nodeId: holder.id,
      kind: "identity-conflict",
      at,
      details: {
        mac,
        ...claim,
        via,
        note: `a new MAC presented this node's ${"uuid" in claim ? "UUID" : "serial"}; it was given nothing of the node. If it is this machine: centra-pxe nodes adopt ${holder.id} ${mac}`,
      },
    });
    this.core.logger.warn(
      { nodeId: holder.id, mac, ...claim, via },
      "a new MAC claims a known node's identity; recorded as a conflict, not acted on",
    );
  }

  /** Token bucket: `sightingsPerSecond`, up to `sightingBurst` at once. */
  private takeBudget(now: number): boolean {
    const { sightingsPerSecond, sightingBurst } = this.core.config.provisioning;
    const bucket = (this.bucket ??= { tokens: sightingBurst, at: now });
    bucket.tokens = Math.min(sightingBurst, bucket.tokens + ((now - bucket.at) / 1000) * sightingsPerSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  private remember(mac: string, at: number, identity: string): void {
    if (this.lastReported.size >= this.maxRemembered) {
      for (const [key, value] of this.lastReported)
        if (at - value.at >= SIGHTING_WRITE_INTERVAL_MS) this.lastReported.delete(key);
      for (const [key, value] of this.conflictReportedAt)
        if (at - value >= CONFLICT_EVENT_INTERVAL_MS) this.conflictReportedAt.delete(key);
      // Every entry recent (a budget configured above the bound per interval): the bound holds
      // anyway; the oldest goes, and that MAC at worst gets one more write.
      forgetOldest(this.lastReported, this.maxRemembered - 1);
    }
    // Deleted first so the map stays in the order of the last sighting, oldest first.
    this.lastReported.delete(mac);
    this.lastReported.set(mac, { at, identity });
  }
}

/** Drop the first-inserted entries of `map` until it holds at most `size`. */
function forgetOldest(map: Map<string, unknown>, size: number): void {
  for (const key of map.keys()) {
    if (map.size <= size) return;
    map.delete(key);
  }
}

function definedSighting(sighting: Sighting): Sighting {
  return {
    via: sighting.via,
    mac: sighting.mac,
    ...defined({ firmware: sighting.firmware, uuid: sighting.uuid, serial: sighting.serial }),
  };
}

function blankToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
