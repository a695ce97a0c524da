import { closeSync } from "node:fs";
import { formatIpv4 } from "../config/primitives.js";
import { DecodeError } from "../errors.js";
import type { Logger } from "../log.js";
import { BROADCAST_ADDRESS, type Destination } from "./destination.js";
import {
  BATCH_ENTRY,
  closeWatcher,
  type DatagramWatcher,
  openDeviceSocketFd,
  sendBatch,
  setArpEntry,
  watchDatagrams,
} from "./device-socket.js";
import type { HandleResult, RequestSource } from "./handler.js";
import { DEFAULT_INTAKE_LIMITS, Intake, type IntakeLane, type IntakeLimits } from "./intake.js";
import { MessageType } from "./options.js";
import { decode, encode, hardwareAddress, peekMessageType, type DhcpPacket } from "./packet.js";
import type { PoolLease } from "./pool.js";

/** Counters for logs, `/metrics` and the benchmark. */
export interface DhcpCounters {
  received: number;
  dropped: number;
  malformed: number;
  replies: number;
  ignored: number;
  commits: number;
  committedLeases: number;
  sendErrors: number;
  /** Relayed packets whose giaddr is not in `dhcp.relays`. */
  untrustedRelay: number;
  /** Packets from MACs we hold nothing for, beyond `dhcp.budgets.newClients`. */
  newClientsDropped: number;
  /** Sightings not passed to the inventory, beyond `dhcp.budgets.sightings`. */
  sightingsDropped: number;
  /**
   * New DISCOVERs (and requests from MACs we hold nothing for) dropped past saturation, so that
   * clients already in an exchange are answered first (intake.ts).
   */
  discoversShed: number;
}

export function zeroCounters(): DhcpCounters {
  return {
    received: 0,
    dropped: 0,
    malformed: 0,
    replies: 0,
    ignored: 0,
    commits: 0,
    committedLeases: 0,
    sendErrors: 0,
    untrustedRelay: 0,
    newClientsDropped: 0,
    sightingsDropped: 0,
    discoversShed: 0,
  };
}

export interface DhcpSocketServerOptions {
  interfaceName: string;
  /** Ports to listen on; `pxePorts` of them are the proxyDHCP boot-server port. */
  ports: readonly number[];
  pxePorts?: ReadonlySet<number>;
  logger: Logger;
  handle(request: DhcpPacket, source: RequestSource): HandleResult;
  /**
   * Make a batch of lease changes durable; replies wait for it. A store shared with other servers
   * may refuse some (another client holds the address): it returns the holders' leases.
   */
  persist(leases: PoolLease[]): Promise<readonly PoolLease[]>;
  /** A batch is durable (its ACKs are about to leave); `leases` are those saved. */
  committed?(leases: PoolLease[]): void;
  /** Another server's leases the store refused ours for: learn them before the refused requests are handled again. */
  refused?(holders: readonly PoolLease[]): void;
  /**
   * A client this server has no record of (`result.missed`): look for one where the other servers
   * keep theirs (RFC 2131 §4.4.5); resolves true when something was found and the request is worth
   * handling again.
   */
  lookup?(mac: string): Promise<boolean>;
  onResult?(request: DhcpPacket, result: HandleResult): void;
  /** The intake lane of a request (handler.ts `intakeLane`); without it every request is in progress. */
  laneOf?(request: DhcpPacket): IntakeLane;
  intakeLimits?: IntakeLimits;
}

/**
 * How long one turn of the event loop may spend handling queued requests before it reads the
 * socket again. The reader takes at most 256 datagrams per socket per turn: while the kernel holds more
 * than that, the turn must be short or its buffer fills and drops without regard to who is
 * mid-exchange. Reading (a few µs a datagram, in batches) is cheap, handling is not, so the backlog is pulled
 * into the intake, where in-progress clients go first, and the kernel never has to choose.
 */
const HANDLE_BUDGET_MS = 1;
/** The turn's budget when the last poll read all it may: the kernel probably has more. */
const HANDLE_BUDGET_BACKLOGGED_MS = 0.25;
/** What the reader takes per socket per turn at most (native/udp-device-socket.c, 4 x 64). */
const READS_PER_TURN = 256;
/**
 * Lease changes waiting for the next commit beyond which new clients wait: the store is then what
 * cannot keep up. With a shared store every OFFER is a claim to commit (handler.ts `claimOffers`),
 * so handling DISCOVERs faster than PostgreSQL commits grew each batch to 600 leases in the
 * benchmark, every OFFER and ACK waited behind it, the event loop spent itself on building them,
 * the kernel dropped REQUESTs with the flood, and the rate collapsed (158 DORA/s at 8,000 offered,
 * against 2,971 at 3,000). Clients in progress are still handled: their ACKs are what a batch is for.
 */
const MAX_UNCOMMITTED_LEASES = 256;

/** Replies decided in one callback, sent together (`sendBatch`) once it returns. */
interface Outbox {
  datagrams: Buffer[];
  /** (address, port) per datagram, host order. */
  destinations: number[];
}

/** One listening socket: read natively in batches, written to with `sendBatch`. */
interface Endpoint {
  fd: number;
  port: number;
  /** The proxyDHCP boot-server port (4011). */
  pxePort: boolean;
  watcher: DatagramWatcher;
  outbox: Outbox;
  /** False once `stop` began: a lookup that comes back late must not answer through it. */
  open: boolean;
}

interface Received {
  endpoint: Endpoint;
  request: DhcpPacket;
  source: RequestSource;
}

interface PendingReply {
  endpoint: Endpoint;
  result: Extract<HandleResult, { kind: "reply" }>;
  /** Kept to handle it again when its lease was refused (a shared store). */
  request: DhcpPacket;
  source: RequestSource;
  /** Handled again once already: a second refusal drops it (the client retries). */
  retried: boolean;
}

/**
 * The socket edge: datagrams in, `handle` decides, replies out. Lease changes are group-committed:
 * everything handled in one turn of the event loop is saved in one transaction, and only then are
 * that turn's ACKs sent. Nothing thrown here stops the loop; a bad packet is counted and skipped.
 */
export class DhcpSocketServer {
  readonly counters: DhcpCounters = zeroCounters();
  private endpoints: Endpoint[] = [];
  private batchLeases: PoolLease[] = [];
  private batchReplies: PendingReply[] = [];
  private flushScheduled = false;
  private commitInFlight = false;
  private readonly intake: Intake<Received>;
  private drainScheduled = false;
  /** Datagrams read since the last drain: a full read says a backlog waits in the kernel. */
  private readSinceDrain = 0;
  private outboxScheduled = false;
  /** Batches not yet settled: a socket is closed only once none is left (its fd must not be reused meanwhile). */
  private batchesInFlight = 0;

  constructor(private readonly options: DhcpSocketServerOptions) {
    this.intake = new Intake(options.intakeLimits ?? DEFAULT_INTAKE_LIMITS);
  }

  get listening(): boolean {
    return this.endpoints.length > 0;
  }

  async start(): Promise<void> {
    for (const port of this.options.ports) {
      const fd = openDeviceSocketFd(this.options.interfaceName, port);
      let watcher: DatagramWatcher;
      try {
        // Batches arrive from a later turn of the loop, when `endpoint` is set.
        watcher = watchDatagrams(fd, (data, table, errno) => this.receiveBatch(endpoint, data, table, errno));
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      const pxePort = this.options.pxePorts?.has(port) ?? false;
      const endpoint: Endpoint = {
        fd,
        port,
        pxePort,
        watcher,
        outbox: { datagrams: [], destinations: [] },
        open: true,
      };
      this.endpoints.push(endpoint);
    }
  }

  async stop(): Promise<void> {
    // Stop reading, then let what was decided reach the disk (and its ACKs the wire).
    for (const endpoint of this.endpoints) endpoint.open = false;
    // What was read is answered: its clients are on the wire waiting.
    for (let next = this.intake.next(); next; next = this.intake.next())
      this.dispatch(next.endpoint, next.request, next.source, false);
    while (this.commitInFlight || this.batchLeases.length || this.batchReplies.length) {
      if (!this.commitInFlight) await this.flushNow();
      else await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.sendOutboxes();
    while (this.batchesInFlight) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const endpoint of this.endpoints) closeWatcher(endpoint.watcher);
    this.endpoints = [];
  }

  private receiveBatch(endpoint: Endpoint, data: Buffer | null, table: Uint32Array | null, errno: number): void {
    if (!data || !table) {
      this.options.logger.error({ errno, port: endpoint.port }, "DHCP socket error");
      return;
    }
    if (!endpoint.open) return;
    for (let at = 0; at < table.length; at += BATCH_ENTRY) {
      const offset = table[at]!;
      const datagram = data.subarray(offset, offset + table[at + 1]!);
      this.receive(endpoint, datagram, { address: table[at + 2]!, port: table[at + 3]!, pxePort: endpoint.pxePort });
    }
  }

  private receive(endpoint: Endpoint, data: Buffer, source: RequestSource): void {
    this.counters.received++;
    this.readSinceDrain++;
    // Past saturation most of what arrives is DISCOVERs to shed: drop them before the decode. A
    // DISCOVER always waits in the fresh lane (handler.ts intakeLane), so this is the same decision.
    if (this.intake.isFull("fresh") && peekMessageType(data) === MessageType.Discover) {
      this.counters.discoversShed++;
      return;
    }
    let request: DhcpPacket;
    try {
      request = decode(data);
    } catch (error) {
      this.counters.malformed++;
      if (error instanceof DecodeError)
        this.options.logger.debug(
          { from: formatIpv4(source.address), bytes: data.length, reason: error.message },
          "malformed DHCP packet dropped",
        );
      else this.options.logger.error({ err: error }, "unexpected error decoding a DHCP packet");
      return;
    }
    let lane: IntakeLane = "inProgress";
    try {
      lane = this.options.laneOf?.(request) ?? "inProgress";
    } catch (error) {
      this.options.logger.error({ err: error }, "could not classify a DHCP request; handled as in progress");
    }
    if (!this.intake.admit({ endpoint, request, source }, lane, hardwareAddress(request))) {
      // Past saturation: the newcomer is dropped, not a client mid-exchange (intake.ts).
      if (lane === "fresh") this.counters.discoversShed++;
      else this.counters.dropped++;
      return;
    }
    this.scheduleDrain();
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    // setImmediate runs after the poll phase has read what is queued in the kernel, so each turn
    // the intake sees everything that arrived, and orders it, before any of it is handled.
    setImmediate(() => {
      this.drainScheduled = false;
      const backlogged = this.readSinceDrain >= READS_PER_TURN;
      this.readSinceDrain = 0;
      this.drain(backlogged ? HANDLE_BUDGET_BACKLOGGED_MS : HANDLE_BUDGET_MS);
    });
  }

  /**
   * Handle queued requests, in-progress clients first, for at most `budgetMs` (at least one); new
   * clients only while the next commit is not already full (`MAX_UNCOMMITTED_LEASES`).
   */
  private drain(budgetMs: number): void {
    const until = performance.now() + budgetMs;
    const storeBehind = () => this.batchLeases.length >= MAX_UNCOMMITTED_LEASES;
    for (let next = this.intake.next(storeBehind()); next; next = this.intake.next(storeBehind())) {
      this.dispatch(next.endpoint, next.request, next.source, false);
      if (performance.now() >= until) break;
    }
    // A stale DISCOVER skipped (intake.ts) is a request not answered on purpose.
    this.counters.ignored += this.intake.takeSuperseded();
    // New clients held back by the store are handled once its commit lands (flushNow drains again).
    if (this.intake.size && this.endpoints.length && !storeBehind()) this.scheduleDrain();
  }

  /** Handle one decoded request: answer now, queue behind the next commit, or (a miss) look it up first. */
  private dispatch(endpoint: Endpoint, request: DhcpPacket, source: RequestSource, retried: boolean): void {
    let result: HandleResult;
    try {
      result = this.options.handle(request, source);
    } catch (error) {
      this.counters.dropped++;
      this.options.logger.error({ err: error, mac: hardwareAddress(request) }, "DHCP handler failed; packet dropped");
      return;
    }
    if (result.kind === "ignore" && result.missed !== undefined && this.options.lookup && !retried) {
      // Another server may hold this client's lease: ask the shared store before staying silent.
      const lookup = this.options.lookup;
      const mac = result.missed;
      lookup(mac).then(
        (found) => {
          if (found && endpoint.open) this.dispatch(endpoint, request, source, true);
          else this.options.onResult?.(request, result);
        },
        (error: unknown) => {
          this.options.logger.warn({ err: error, mac }, "could not look up a client in the shared lease store");
          this.options.onResult?.(request, result);
        },
      );
      return;
    }
    this.options.onResult?.(request, result);
    if (result.persist.length) this.batchLeases.push(...result.persist);
    if (result.kind === "ignore") {
      this.counters.ignored++;
      if (result.count) this.counters[result.count]++;
    } else if (result.persist.length === 0) {
      // OFFERs and NAKs change nothing durable; they go out at once.
      this.send(endpoint, result);
    } else {
      this.batchReplies.push({ endpoint, result, request, source, retried });
    }
    if (this.batchLeases.length) this.scheduleFlush();
  }

  /**
   * Group commit: one batch in flight at a time; everything handled while it reaches the disk
   * forms the next batch, so under load one fsync covers many ACKs and the loop never waits.
   */
  private async flushNow(): Promise<void> {
    this.flushScheduled = false;
    if (this.commitInFlight) return;
    if (!this.batchLeases.length && !this.batchReplies.length) return;
    const leases = this.batchLeases;
    const replies = this.batchReplies;
    this.batchLeases = [];
    this.batchReplies = [];
    this.commitInFlight = true;
    try {
      const holders = await this.options.persist(leases);
      this.counters.commits++;
      this.counters.committedLeases += leases.length - holders.length;
      if (holders.length) {
        // Another server's client holds these addresses: nothing of ours for them was saved, so
        // learn the holders and handle those requests again (a NAK, or another address).
        const taken = new Set(holders.map((l) => l.address));
        this.options.committed?.(leases.filter((l) => !taken.has(l.address)));
        this.options.refused?.(holders);
        for (const pending of replies) {
          if (pending.result.persist.some((l) => taken.has(l.address))) {
            if (pending.retried) this.counters.dropped++;
            else this.dispatch(pending.endpoint, pending.request, pending.source, true);
          } else this.send(pending.endpoint, pending.result);
        }
      } else {
        this.options.committed?.(leases);
        for (const { endpoint, result } of replies) this.send(endpoint, result);
      }
    } catch (error) {
      // Not durable, so not acknowledged: the clients retry and get the same address.
      this.counters.dropped += replies.length;
      this.options.logger.error(
        { err: error, leases: leases.length },
        "could not save leases; their ACKs were not sent",
      );
    } finally {
      this.commitInFlight = false;
    }
    if (this.batchLeases.length || this.batchReplies.length) this.scheduleFlush();
    if (this.intake.size && this.endpoints.length) this.scheduleDrain();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.commitInFlight) return;
    this.flushScheduled = true;
    // setImmediate runs after the poll phase has read what is queued, so a burst shares a commit.
    setImmediate(() => void this.flushNow());
  }

  private send(endpoint: Endpoint, result: Extract<HandleResult, { kind: "reply" }>): void {
    let bytes: Buffer;
    try {
      bytes = encode(result.reply, result.maxSize);
    } catch (error) {
      this.counters.sendErrors++;
      this.options.logger.error({ err: error }, "could not encode a DHCP reply");
      return;
    }
    const { address, port } = this.resolveDestination(result.destination);
    this.counters.replies++;
    const outbox = endpoint.outbox;
    outbox.datagrams.push(bytes);
    outbox.destinations.push(address, port);
    if (!this.outboxScheduled) {
      this.outboxScheduled = true;
      // After the callback that decided them returns: one batch per drain or per commit.
      queueMicrotask(() => this.sendOutboxes());
    }
  }

  private sendOutboxes(): void {
    this.outboxScheduled = false;
    for (const endpoint of this.endpoints) {
      const outbox = endpoint.outbox;
      if (outbox.datagrams.length === 0) continue;
      endpoint.outbox = { datagrams: [], destinations: [] };
      this.batchesInFlight++;
      try {
        sendBatch(endpoint.fd, outbox.datagrams, Uint32Array.from(outbox.destinations), (failed, errno) => {
          this.batchesInFlight--;
          if (failed === 0) return;
          const lost = failed < 0 ? outbox.datagrams.length : failed;
          this.counters.sendErrors += lost;
          this.options.logger.warn({ errno, replies: lost }, "DHCP replies not sent");
        });
      } catch (error) {
        this.batchesInFlight--;
        this.counters.sendErrors += outbox.datagrams.length;
        this.options.logger.error({ err: error }, "could not send DHCP replies");
      }
    }
  }

  private resolveDestination(destination: Destination): { address: number; port: number } {
    if (destination.kind === "broadcast") return { address: BROADCAST_ADDRESS, port: destination.port };
    if (destination.kind === "hardware") {
      try {
        setArpEntry(this.options.interfaceName, formatIpv4(destination.address), destination.mac);
      } catch (error) {
        // Without the ARP entry the unicast would wait on an ARP reply that cannot come; broadcast instead.
        this.options.logger.debug(
          { err: error, address: formatIpv4(destination.address) },
          "could not set an ARP entry; broadcasting the reply",
        );
        return { address: BROADCAST_ADDRESS, port: destination.port };
      }
    }
    return { address: destination.address, port: destination.port };
  }
}
