import type { BootObservation, DhcpObservation } from "../contracts/boot-observation.js";
import type { BootAttemptRecord, BootStep, LifecycleStep } from "./attempt.js";

/**
 * Joins what DHCP, TFTP, HTTP and the lifecycle saw into boot attempts, one list per MAC, in memory
 * with hard caps. DHCP names the MAC and the address it handed out; TFTP and HTTP only know the
 * client's address, so they are joined through the last address DHCP (or the per-machine script's
 * `${mac}`) tied to a MAC.
 *
 * Bounded: a stranger spraying random MACs fills only the `strangers` pool (machines the inventory
 * does not hold), whose least recently seen MAC is dropped first; machines the inventory holds are
 * never pushed out by strangers. Each machine keeps its newest `attemptsPerMachine` attempts, each
 * attempt its first `stepsPerAttempt` steps (a ROM retrying forever is counted, not stored).
 */
export interface TimelineLimits {
  /** Machines of the inventory tracked at once (least recently seen dropped past it). */
  machines: number;
  /** Machines the inventory does not hold, tracked at once. */
  strangers: number;
  attemptsPerMachine: number;
  stepsPerAttempt: number;
}

export const DEFAULT_TIMELINE_LIMITS: TimelineLimits = {
  machines: 20_000,
  strangers: 1_000,
  attemptsPerMachine: 5,
  stepsPerAttempt: 100,
};

/** A quiet spell this long ends an attempt: the next thing the machine does starts a new one. */
export const ATTEMPT_IDLE_MS = 10 * 60_000;
/** A ROM's DISCOVERs retransmitted within this are one step with `repeats`. */
const REPEAT_FOLD_MS = 60_000;

export interface TimelineCounters {
  observations: number;
  /** TFTP/HTTP from an address no DHCP exchange tied to a MAC: not attributed to any machine. */
  unattributed: number;
  attemptsOpened: number;
  /** Machines dropped to stay within the caps (strangers first). */
  machinesEvicted: number;
  attemptsEvicted: number;
  stepsDropped: number;
}

export interface TimelineSnapshot {
  version: 1;
  nextAttempt: number;
  attempts: BootAttemptRecord[];
  addresses: [string, string][];
}

export interface BootTimelineOptions {
  limits?: Partial<TimelineLimits>;
  now?: () => number;
  /** Whether the inventory holds this MAC (the collector's own pool for it is then `machines`). */
  isKnown?: (mac: string) => boolean;
}

/** What changed, for the metrics and the alerts: a step appended to an attempt (new or not). */
export type TimelineListener = (attempt: BootAttemptRecord, step: BootStep, opened: boolean) => void;

export class BootTimeline {
  private readonly machines = new Map<string, BootAttemptRecord[]>();
  private readonly strangers = new Map<string, BootAttemptRecord[]>();
  /** Address → MAC, least recently tied first. */
  private readonly addresses = new Map<string, string>();
  private nextAttempt = 1;
  private readonly listeners = new Set<TimelineListener>();
  readonly counters: TimelineCounters = {
    observations: 0,
    unattributed: 0,
    attemptsOpened: 0,
    machinesEvicted: 0,
    attemptsEvicted: 0,
    stepsDropped: 0,
  };
  limits: TimelineLimits;
  private readonly now: () => number;
  private readonly isKnown: (mac: string) => boolean;

  constructor(options: BootTimelineOptions = {}) {
    this.limits = { ...DEFAULT_TIMELINE_LIMITS, ...options.limits };
    this.now = options.now ?? Date.now;
    this.isKnown = options.isKnown ?? (() => false);
  }

  onStep(listener: TimelineListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The MAC the address was last joined to (by DHCP, or a script's `${mac}`); a diagnosis, not an identity. */
  macAt(address: string): string | undefined {
    return this.addresses.get(address);
  }

  /** Machines tracked now (both pools). */
  get size(): number {
    return this.machines.size + this.strangers.size;
  }

  /** A part's report. Never throws (it runs on the protocols' paths). */
  observe(observation: BootObservation): void {
    this.counters.observations++;
    switch (observation.source) {
      case "dhcp":
        this.observeDhcp(observation);
        return;
      case "tftp": {
        const mac = this.addresses.get(observation.client);
        if (mac === undefined) {
          this.counters.unattributed++;
          return;
        }
        const { source, client: _client, at, ...rest } = observation;
        this.append(mac, { source, at: at - observation.ms, ...rest }, "continue");
        return;
      }
      case "http": {
        const { source, client, at, mac: claimed, ...rest } = observation;
        // The script's `${mac}` is iPXE's own word for the NIC that asked; it also ties the address.
        if (claimed !== undefined) this.tie(client, claimed);
        const mac = claimed ?? this.addresses.get(client);
        if (mac === undefined) {
          this.counters.unattributed++;
          return;
        }
        const profile = observation.decision?.profile;
        this.append(mac, { source, at: at - observation.ms, ...rest }, "continue", (attempt) => {
          if (profile !== undefined) attempt.profile = profile;
        });
        return;
      }
    }
  }

  /**
   * What the lifecycle said of a node (`macs`: its MACs): attached to the newest attempt of any of
   * them; a node never seen booting gets none (a timeout of a machine that never came is not a boot).
   */
  lifecycle(macs: readonly string[], step: LifecycleStep): void {
    let newest: BootAttemptRecord | undefined;
    for (const mac of macs) {
      const latest = this.listOf(mac)?.at(-1);
      if (latest && (!newest || latest.updatedAt > newest.updatedAt)) newest = latest;
    }
    if (newest) this.push(newest, step, false);
  }

  /** The attempts of these MACs, newest first. */
  attemptsOf(macs: readonly string[]): BootAttemptRecord[] {
    return macs.flatMap((mac) => this.listOf(mac) ?? []).sort((a, b) => b.attempt - a.attempt);
  }

  /** Every tracked attempt whose last news is at or after `since` (Unix ms), newest first. */
  recent(since: number, limit: number): BootAttemptRecord[] {
    const found: BootAttemptRecord[] = [];
    for (const pool of [this.machines, this.strangers])
      for (const list of pool.values()) for (const a of list) if (a.updatedAt >= since) found.push(a);
    return found.sort((a, b) => b.updatedAt - a.updatedAt).slice(0, limit);
  }

  /** The newest attempt of each tracked MAC (what the alert sweep judges). */
  *latestAttempts(): Iterable<{ attempt: BootAttemptRecord; earlier: readonly BootAttemptRecord[] }> {
    for (const pool of [this.machines, this.strangers])
      for (const list of pool.values()) {
        const attempt = list.at(-1);
        if (attempt) yield { attempt, earlier: list.slice(0, -1) };
      }
  }

  /** The attempts of a MAC, oldest first (the verdict's boot-loop context). */
  history(mac: string): readonly BootAttemptRecord[] {
    return this.listOf(mac) ?? [];
  }

  snapshot(): TimelineSnapshot {
    const attempts: BootAttemptRecord[] = [];
    // Strangers first, so a restore that hits the caps keeps the inventory's machines.
    for (const pool of [this.strangers, this.machines]) for (const list of pool.values()) attempts.push(...list);
    return { version: 1, nextAttempt: this.nextAttempt, attempts, addresses: [...this.addresses] };
  }

  restore(snapshot: TimelineSnapshot): void {
    this.nextAttempt = Math.max(this.nextAttempt, snapshot.nextAttempt);
    for (const attempt of snapshot.attempts) {
      const list = this.listFor(attempt.mac);
      list.push(attempt);
      list.sort((a, b) => a.attempt - b.attempt);
      while (list.length > this.limits.attemptsPerMachine) list.shift();
    }
    for (const [address, mac] of snapshot.addresses) this.tie(address, mac);
  }

  private observeDhcp(o: DhcpObservation): void {
    if (o.address !== undefined && (o.reply === "ACK" || o.reply === "OFFER" || o.reply === undefined))
      this.tie(o.address, o.mac);
    const step: BootStep = {
      source: "dhcp",
      at: o.at,
      message: o.message,
      bootClient: o.bootClient,
      ...(o.reply !== undefined ? { reply: o.reply } : {}),
      ...(o.ignored !== undefined ? { ignored: o.ignored } : {}),
      ...(o.address !== undefined ? { address: o.address } : {}),
      ...(o.userClass !== undefined ? { userClass: o.userClass } : {}),
    };
    // An operating system's own DHCP (the installer's) tells us the kernel ran; it never starts an attempt.
    if (!o.bootClient) {
      const latest = this.listOf(o.mac)?.at(-1);
      if (latest && this.now() - latest.updatedAt < ATTEMPT_IDLE_MS) this.push(latest, step, false);
      return;
    }
    this.append(o.mac, step, o.message === "DISCOVER" ? "discover" : "continue", (attempt) => {
      // The ROM's option 93 says what the machine is; iPXE's own DHCP may say what iPXE was built as.
      if (o.firmware !== undefined && (attempt.firmware === undefined || o.userClass !== "iPXE"))
        attempt.firmware = o.firmware;
      if (o.arch !== undefined) attempt.arch ??= o.arch;
      if (o.address !== undefined && o.reply !== "NAK") attempt.address = o.address;
    });
  }

  /**
   * Append `step` to the MAC's current attempt, or open a new one: after a quiet spell, and on a
   * DISCOVER once the attempt got past DHCP — except iPXE's own DHCP after its TFTP chainload
   * (user class iPXE, nothing fetched over HTTP yet), which is the same boot going on.
   */
  private append(
    mac: string,
    step: BootStep,
    why: "discover" | "continue",
    update?: (attempt: BootAttemptRecord) => void,
  ): BootAttemptRecord {
    const list = this.listFor(mac);
    const latest = list.at(-1);
    const t = this.now();
    let open = !latest || t - latest.updatedAt >= ATTEMPT_IDLE_MS;
    if (!open && latest && why === "discover") {
      const fetchedOverHttp = latest.steps.some((s) => s.source === "http" && s.kind !== "bootloader");
      const fetchedAnything = latest.steps.some((s) => s.source === "tftp" || s.source === "http");
      const chainload = step.source === "dhcp" && step.userClass === "iPXE";
      open = fetchedOverHttp || (fetchedAnything && !chainload);
    }
    if (!open && latest) {
      update?.(latest);
      this.push(latest, step, false);
      return latest;
    }
    const attempt: BootAttemptRecord = {
      attempt: this.nextAttempt++,
      mac,
      startedAt: step.at,
      updatedAt: t,
      steps: [],
      stepsDropped: 0,
      // A machine usually boots the profile it booted last time; the script's decision corrects it.
      ...(latest?.profile !== undefined ? { profile: latest.profile } : {}),
    };
    this.counters.attemptsOpened++;
    list.push(attempt);
    while (list.length > this.limits.attemptsPerMachine) {
      list.shift();
      this.counters.attemptsEvicted++;
    }
    update?.(attempt);
    this.push(attempt, step, true);
    return attempt;
  }

  private push(attempt: BootAttemptRecord, step: BootStep, opened: boolean): void {
    attempt.updatedAt = Math.max(attempt.updatedAt, this.now());
    const previous = attempt.steps.at(-1);
    if (
      step.source === "dhcp" &&
      previous?.source === "dhcp" &&
      previous.message === step.message &&
      previous.reply === step.reply &&
      previous.userClass === step.userClass &&
      step.at - previous.at < REPEAT_FOLD_MS
    ) {
      previous.repeats = (previous.repeats ?? 0) + 1;
    } else if (attempt.steps.length < this.limits.stepsPerAttempt) {
      // In the order things began: a download is reported when it ends, after what happened meanwhile
      // (the install-boot event of the script being served, say).
      let index = attempt.steps.length;
      while (index > 0 && attempt.steps[index - 1]!.at > step.at) index--;
      attempt.steps.splice(index, 0, step);
    } else {
      attempt.stepsDropped++;
      this.counters.stepsDropped++;
    }
    for (const listener of this.listeners) {
      try {
        listener(attempt, step, opened);
      } catch {
        // A listener's bug must not stop the boot it watches.
      }
    }
  }

  private listOf(mac: string): BootAttemptRecord[] | undefined {
    return this.machines.get(mac) ?? this.strangers.get(mac);
  }

  /** The MAC's list, created in its pool (made the most recently used either way). */
  private listFor(mac: string): BootAttemptRecord[] {
    const known = this.isKnown(mac);
    const pool = known ? this.machines : this.strangers;
    const cap = known ? this.limits.machines : this.limits.strangers;
    const other = known ? this.strangers : this.machines;
    let list = pool.get(mac) ?? other.get(mac);
    pool.delete(mac);
    other.delete(mac);
    list ??= [];
    pool.set(mac, list);
    while (pool.size > cap) {
      const oldest = pool.keys().next().value as string;
      pool.delete(oldest);
      this.counters.machinesEvicted++;
    }
    return list;
  }

  private tie(address: string, mac: string): void {
    this.addresses.delete(address);
    this.addresses.set(address, mac);
    const cap = this.limits.machines + this.limits.strangers;
    while (this.addresses.size > cap) this.addresses.delete(this.addresses.keys().next().value as string);
  }
}
