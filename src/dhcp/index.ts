import type { BootChain } from "../boot/boot-chain.js";
import { FIRMWARE_TABLE, type Firmware } from "../boot/firmware.js";
import { formatIpv4, normalizeMac, parseIpv4 } from "../config/primitives.js";
import type { Config, DhcpSubnetConfig } from "../config/schema.js";
import { LogThrottle, type Logger } from "../log.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import { AddressBook } from "./address-book.js";
import { PXE_PORT } from "./destination.js";
import {
  handle,
  intakeLane,
  type DhcpContext,
  type HandleResult,
  type NodeReservation,
  type SubnetPlan,
} from "./handler.js";
import type { LeaseRecord, LeaseStore } from "../contracts/lease-store.js";
import { messageTypeName } from "./options.js";
import { type InterfaceAddress, interfaceRefusal } from "./interface-check.js";
import { readInterfaceAddresses } from "./interface-addresses.js";
import { hardwareAddress, messageType, optionAddress, type DhcpPacket } from "./packet.js";
import { MessageType, Option } from "./options.js";
import { AddressPool, fromRecord, toRecord, type PoolLease } from "./pool.js";
import { Budget, PerClientRateLimit, type BudgetLimits } from "./rate-limit.js";
import { DhcpSocketServer, zeroCounters, type DhcpCounters } from "./server.js";

export type { LeaseRecord, LeaseStore } from "../contracts/lease-store.js";
export type { Sighting } from "../contracts/sighting.js";
import type { Sighting } from "../contracts/sighting.js";
import type { BootObserver } from "../contracts/boot-observation.js";

export interface DhcpServiceOptions {
  config: Config;
  logger: Logger;
  leases: LeaseStore;
  /** Called for every DISCOVER/REQUEST of a network-boot client (the inventory records them). */
  observer?: (seen: Sighting) => void;
  /** Told of every DISCOVER/REQUEST of an Ethernet client and our answer (the boot timeline). */
  bootObserver?: BootObserver;
  /** Consulted before `config.nodes` (the inventory in the database). */
  lookupNode?: (mac: string) => { ipAddress?: string; hostname?: string } | undefined;
  /**
   * The bootloader file names installed now (the composition scans `stateDir/ipxe`); asked for each
   * boot answer, so it should be a cached lookup.
   */
  bootloaders: () => ReadonlySet<string>;
  /**
   * Where the HTTP part serves bootloaders and the entry script under `config`, e.g.
   * `http://10.0.100.10/boot/ipxe` (src/boot `httpBootBase`); asked on start and on each reload.
   */
  bootBaseUrl: (config: Config) => string;
  /**
   * The boot chain of a MAC under the config in force (src/boot `bootChainOf` over the inventory's
   * profile), asked for each boot answer with the client's message (`DISCOVER`, `REQUEST`, …: a
   * DISCOVER may begin a new boot attempt); without it, every machine gets iPXE.
   */
  bootChain?: (mac: string, config: Config, firmware: Firmware, message: string) => BootChain;
  /** Where UEFI HTTP boot firmware gets its bootloader (https:// with http.tls.uefiHttpBoot); default bootBaseUrl. */
  firmwareBootBaseUrl?: (config: Config) => string;
  /** The clock; tests may pin it. */
  now?: () => number;
  /** The host's interfaces and their IPv4 addresses (default: the kernel's list, interface-addresses.ts), read at start and reload. */
  interfaces?: () => Readonly<Record<string, readonly InterfaceAddress[] | undefined>>;
}

export interface DhcpService extends Service {
  readonly counters: DhcpCounters;
  /**
   * The IPv4 address (dotted quad) this DHCP part believes `mac` is using now, or undefined.
   *
   * - `dhcp.mode: server`: the address of the MAC's lease, pool or fixed (a reservation counts only
   *   once it was ACKed), as made durable before the ACK left, until it expires or the MAC releases
   *   it or DECLINEs it. This is an address we handed out, so only the MAC's holder was told it;
   *   it does not prove that a packet from that address comes from that machine (anyone on the link
   *   can spoof a source address).
   * - `dhcp.mode: proxy`: the address the MAC last asked the site's DHCP server for in a REQUEST we
   *   saw on the link (option 50, else ciaddr), kept for `dhcp.leaseTime`. We never see whether the
   *   site's server ACKed it, and a REQUEST is a broadcast anyone can forge with any chaddr, so this
   *   is the machine's claim, not a binding: it stops a stranger who does not bother to forge a
   *   REQUEST, not one who does.
   * - `dhcp.mode: off`, or before `start`: always undefined.
   */
  addressOf(mac: string): string | undefined;
}
/** Log pool exhaustion and other operator-facing remarks at most this often per message kind. */
const NOTABLE_LOG_INTERVAL_MS = 10_000;

/**
 * A remark without its MACs, addresses and numbers: a flood of forged ones is one log line per
 * interval, not thousands. Hardware addresses are whatever length `hlen` said (1 to 16 bytes), so
 * not only the 6-byte form is folded; a 1-byte one ("52") goes with the numbers. The throttle's
 * cap on kinds stands behind this, should a message carry something else from the packet.
 */
export function remarkKind(message: string): string {
  return message
    .replace(/\b[0-9a-f]{2}(:[0-9a-f]{2})+\b/g, "MAC")
    .replace(/\d+\.\d+\.\d+\.\d+/g, "IP")
    .replace(/\d+/g, "N");
}

function budgetLimits(config: Config["dhcp"]["budgets"]["newClients"]): BudgetLimits {
  return {
    rate: config.rate,
    burst: config.burst,
    perMacBurst: config.perMacBurst,
    perMacIntervalMs: config.perMacInterval,
  };
}

/** A budget for `limits`, the running one when the limits did not change (a reload keeps its state). */
function budgetFor(limits: BudgetLimits, running: Budget | undefined): Budget {
  return running && JSON.stringify(running.limits) === JSON.stringify(limits) ? running : new Budget(limits);
}

function planSubnet(s: DhcpSubnetConfig, previous: SubnetPlan[]): SubnetPlan {
  const network = parseIpv4(s.subnet)!;
  const mask = parseIpv4(s.netmask)!;
  const start = parseIpv4(s.range.start)!;
  const end = parseIpv4(s.range.end)!;
  const reuse = previous.find((p) => p.pool.start === start && p.pool.end === end);
  return {
    network,
    mask,
    broadcast: s.broadcast !== undefined ? parseIpv4(s.broadcast)! : (network | ~mask) >>> 0,
    router: s.router !== undefined ? parseIpv4(s.router) : undefined,
    dns: s.dns.map((a) => parseIpv4(a)!),
    domain: s.domain,
    leaseSeconds: Math.max(60, Math.round(s.leaseTime / 1000)),
    // Keep the live pool (offers, leases) when a reload leaves the range alone.
    pool: reuse?.pool ?? new AddressPool(start, end),
    label: `${s.subnet}/${s.netmask}`,
  };
}

/**
 * The DHCP part of the daemon (PRODUCT.md §3): authoritative server or proxyDHCP on
 * `config.interface` only, leases in `leases`, durable before each ACK.
 */
export function createDhcpService(options: DhcpServiceOptions): DhcpService {
  const { logger, leases, observer } = options;
  const log = logger.child({ part: "dhcp" });
  const now = options.now ?? Date.now;
  let config = options.config;
  let subnets: SubnetPlan[] = [];
  let server: DhcpSocketServer | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  const rateLimit = new PerClientRateLimit();
  let sightings: Budget | undefined;
  /** Server mode: what each MAC holds, as made durable. Proxy mode: `context.claims`. */
  const bound = new AddressBook();
  const claims = new AddressBook();
  const notableLog = new LogThrottle(NOTABLE_LOG_INTERVAL_MS);
  let stoppedCounters: DhcpCounters = zeroCounters();

  const lookupNode = (mac: string): NodeReservation | undefined => {
    // `mac` comes from `hardwareAddress`, already in the normalised form config keys use.
    const found = options.lookupNode?.(mac) ?? config.nodes[mac];
    if (!found) return undefined;
    return {
      ipAddress: found.ipAddress !== undefined ? parseIpv4(found.ipAddress) : undefined,
      hostname: found.hostname,
    };
  };

  const context: DhcpContext = {
    mode: "server",
    serverAddress: 0,
    subnets: [],
    relays: new Set(),
    lookupNode,
    boot: {
      firmware: FIRMWARE_TABLE,
      installed: options.bootloaders,
      httpBase: "",
      ...(options.bootChain
        ? {
            chainFor: (mac: string, firmware: Firmware, message: string) =>
              options.bootChain!(mac, config, firmware, message),
          }
        : {}),
    },
    rateLimit,
    now: 0,
  };

  const applyConfig = (next: Config) => {
    const previous = subnets;
    subnets = [planSubnet(next.dhcp, previous), ...next.dhcp.subnets.map((s) => planSubnet(s, previous))];
    context.mode = next.dhcp.mode === "proxy" ? "proxy" : "server";
    context.serverAddress = parseIpv4(next.serverAddress)!;
    context.subnets = subnets;
    context.relays = new Set(next.dhcp.relays.map((a) => parseIpv4(a)!));
    context.boot = {
      ...context.boot,
      httpBase: options.bootBaseUrl(next),
      firmwareHttpBase: (options.firmwareBootBaseUrl ?? options.bootBaseUrl)(next),
    };
    context.newClients = budgetFor(budgetLimits(next.dhcp.budgets.newClients), context.newClients);
    context.claims = context.mode === "proxy" ? claims : undefined;
    context.claimOffers = context.mode === "server" && leases.claimLeases !== undefined;
    sightings = budgetFor(budgetLimits(next.dhcp.budgets.sightings), sightings);
    config = next;
  };

  /** Server mode: keep `bound` in step with what is durable. */
  const recordDurable = (changes: readonly PoolLease[]) => {
    for (const lease of changes) {
      if (lease.state === "bound" && lease.mac) bound.bind(lease.mac, lease.address, lease.expiresAt);
      else if (lease.state !== "offered") bound.unbindAddress(lease.address);
    }
  };

  /** Take leases the store holds (at start, or another server's as it commits them) into the pools. */
  const learn = (records: readonly LeaseRecord[]) => {
    const t = now();
    let loaded = 0;
    for (const record of records) {
      const lease = fromRecord(record);
      if (!lease) continue;
      if (lease.expiresAt > t) recordDurable([lease]);
      else bound.unbindAddress(lease.address);
      const plan = subnets.find((s) => s.pool.contains(lease.address));
      if (!plan) continue; // a fixed address, or a range that was since narrowed
      plan.pool.put(lease);
      // What another server did with a client never voids this one's offer to it: every server
      // offers to every DISCOVER and the client picks (RFC 2131 §4.4.1); its REQUEST naming
      // another server is what ends our offer (handler.ts). Voided on hearing the other's OFFER,
      // or a binding whose NOTIFY came late (commits queue under load, so its time says little),
      // our offer's address went to the next DISCOVER and the client's REQUEST for it was NAKed
      // ("belongs to another client"): ~1% of the storm's machines on two servers
      // (bench/storm/README.md). A client bound elsewhere that DISCOVERs again is offered its
      // lease (pool.ts `choose`).
      if (lease.expiresAt > t) loaded++;
    }
    return loaded;
  };
  const loadPools = async () => learn(await leases.loadLeases());
  /** A lease of ours outside every pool is a reservation's: a shared store saves it without a claim. */
  const inAnyPool = (address: number) => subnets.some((s) => s.pool.contains(address));
  let stopWatching: (() => void) | undefined;

  /**
   * The boot timeline's view of an exchange. Drops a flood already refused (budgets, untrusted
   * relays) before it costs anything; the timeline bounds the rest.
   */
  const reportExchange = (request: DhcpPacket, result: HandleResult) => {
    const bootObserver = options.bootObserver;
    if (!bootObserver || (result.kind === "ignore" && result.count) || request.htype !== 1 || request.hlen !== 6)
      return;
    const type = messageType(request);
    if (type !== MessageType.Discover && type !== MessageType.Request) return;
    const reply = result.kind === "reply" ? result.reply : undefined;
    // Server mode: the address we handed out. Proxy mode: the one the client asked the site's server
    // for (option 50, else ciaddr), the only address we can tie its TFTP and HTTP to.
    const yiaddr = reply?.yiaddr ?? 0;
    const requested =
      type === MessageType.Request ? (optionAddress(request, Option.RequestedIpAddress) ?? request.ciaddr) : 0;
    const address = yiaddr || (context.mode === "proxy" ? requested : 0);
    const seen = result.seen;
    bootObserver({
      source: "dhcp",
      at: now(),
      mac: hardwareAddress(request),
      message: messageTypeName(type),
      ...(reply ? { reply: messageTypeName(messageType(reply)) } : {}),
      ...(result.kind === "ignore" ? { ignored: result.reason } : {}),
      ...(address ? { address: formatIpv4(address) } : {}),
      ...(seen?.firmware !== undefined ? { firmware: seen.firmware } : {}),
      ...(seen?.arch !== undefined ? { arch: seen.arch } : {}),
      ...(seen?.userClass !== undefined ? { userClass: seen.userClass } : {}),
      bootClient: seen !== undefined,
    });
  };

  const logResult = (request: Parameters<typeof handle>[0], result: HandleResult) => {
    try {
      reportExchange(request, result);
    } catch (error) {
      log.error({ err: error }, "DHCP boot observer failed");
    }
    if (result.seen && observer) {
      // Each sighting may be a database write on this event loop: a flood of spoofed MACs must not
      // become a flood of writes (issue 10). Known machines rarely hit the per-MAC limit: a boot is
      // about four sightings (the ROM's DISCOVER and REQUEST, then iPXE's).
      if (sightings?.take(result.seen.mac, context.now) === "allowed") {
        try {
          observer(result.seen);
        } catch (error) {
          log.error({ err: error }, "DHCP observer failed");
        }
      } else if (server) {
        server.counters.sightingsDropped++;
        notable(
          "sighting budget",
          `sighting budget spent (dhcp.budgets.sightings): machines seen on DHCP are not all passed to the inventory`,
        );
      }
    }
    for (const warning of result.warnings) notable(remarkKind(warning), warning);
    if (result.kind === "ignore") {
      if (result.notable) notable(remarkKind(result.reason), result.reason);
      else if (log.isLevelEnabled("debug"))
        log.debug(
          { mac: hardwareAddress(request), type: messageTypeName(messageType(request)), reason: result.reason },
          "no reply",
        );
    } else if (log.isLevelEnabled("debug")) {
      log.debug(
        {
          mac: hardwareAddress(request),
          type: messageTypeName(messageType(request)),
          reply: messageTypeName(messageType(result.reply)),
          yiaddr: formatIpv4(result.reply.yiaddr),
          file: result.reply.file || undefined,
        },
        "reply",
      );
    }
  };

  /** Warn once per kind per interval: a rack of machines all failing the same way is one line, not a thousand. */
  const notable = (kind: string, message: string) => {
    const heldBack = notableLog.admit(kind, now());
    if (heldBack === undefined) return;
    if (heldBack > 0) log.warn({ heldBack }, `${message} (and ${heldBack} more like it since the last such line)`);
    else log.warn(message);
  };

  const readInterfaces = options.interfaces ?? readInterfaceAddresses;
  /** Server mode answers only where the interface carries serverAddress in dhcp.subnet (interface-check.ts). */
  const refuseForeignNetwork = (next: Config) => {
    const refusal = interfaceRefusal(next, readInterfaces());
    if (refusal) throw new Error(`DHCP refuses to serve: ${refusal}`);
  };

  /** The device socket is bound to one interface, mode and port for the life of the process. */
  const refuseRestartOnlyChanges = (next: Config) => {
    if (
      next.interface !== config.interface ||
      next.dhcp.mode !== config.dhcp.mode ||
      next.dhcp.port !== config.dhcp.port
    ) {
      throw new Error("changing interface, dhcp.mode or dhcp.port needs a restart");
    }
    refuseForeignNetwork(next);
  };

  applyConfig(config);

  return {
    name: "dhcp",
    get counters(): DhcpCounters {
      // After `stop` the last server's counts stay readable (tests and the benchmark read them then).
      return server?.counters ?? stoppedCounters;
    },

    async start() {
      if (config.dhcp.mode === "off") {
        log.info("dhcp.mode is off; not answering DHCP");
        return;
      }
      // Before any socket exists: nothing is received or sent on an interface we refuse.
      refuseForeignNetwork(config);
      // Several servers on one database: learn the others' leases as they commit them, from before
      // the first load so none falls between the two.
      if (context.mode === "server" && leases.watch) stopWatching = leases.watch((records) => learn(records));
      const active = context.mode === "server" ? await loadPools() : 0;
      const proxy = context.mode === "proxy";
      const ports = proxy ? [config.dhcp.port, PXE_PORT] : [config.dhcp.port];
      server = new DhcpSocketServer({
        interfaceName: config.interface,
        ports,
        pxePorts: new Set(proxy ? [PXE_PORT] : []),
        logger: log,
        handle: (request, source) => {
          context.now = now();
          return handle(request, context, source);
        },
        persist: async (changes: PoolLease[]) => {
          const t = now();
          const records = changes.map((l) =>
            inAnyPool(l.address) ? toRecord(l, t) : { ...toRecord(l, t), fixed: true },
          );
          if (!leases.claimLeases) {
            await leases.saveLeases(records);
            return [];
          }
          const { refused } = await leases.claimLeases(records);
          return refused.flatMap((record) => fromRecord(record) ?? []);
        },
        committed: recordDurable,
        refused: (holders) => learn(holders.map((l) => toRecord(l, now()))),
        ...(leases.findByMac
          ? {
              lookup: async (mac: string) => {
                const found = (await leases.findByMac!(mac)).filter((r) => r.state === "bound" && r.expiresAt > now());
                learn(found);
                return found.length > 0;
              },
            }
          : {}),
        onResult: logResult,
        laneOf: (request) => {
          context.now = now();
          return intakeLane(request, context);
        },
      });
      try {
        await server.start();
      } catch (error) {
        await server.stop().catch(() => undefined);
        server = undefined;
        throw new Error(
          `DHCP cannot listen on interface ${config.interface} port(s) ${ports.join(", ")}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      sweepTimer = setInterval(() => {
        const t = now();
        for (const s of subnets) s.pool.sweepOffers(t);
        rateLimit.sweep(t);
        context.newClients?.sweep(t);
        sightings?.sweep(t);
        bound.sweep(t);
        claims.sweep(t);
      }, 30_000);
      sweepTimer.unref();
      log.info(
        { interface: config.interface, mode: config.dhcp.mode, ports, activeLeases: active },
        "DHCP listening on this interface only",
      );
    },

    async stop() {
      stopWatching?.();
      stopWatching = undefined;
      if (sweepTimer) clearInterval(sweepTimer);
      sweepTimer = undefined;
      await server?.stop();
      if (server) stoppedCounters = { ...server.counters };
      server = undefined;
    },

    check: refuseRestartOnlyChanges,

    // `check` ran first (Daemon.reload); not again here: a rollback re-applies the config this part
    // ran with, and must not be refused because the host's addresses have moved since.
    async reload(next: Config) {
      const rangesChanged =
        JSON.stringify([next.dhcp.range, next.dhcp.subnets.map((s) => s.range)]) !==
        JSON.stringify([config.dhcp.range, config.dhcp.subnets.map((s) => s.range)]);
      applyConfig(next);
      // New ranges start empty; fill them from the store so no address held on disk is offered again.
      if (rangesChanged && context.mode === "server") await loadPools();
    },

    addressOf(mac: string): string | undefined {
      const normalized = normalizeMac(mac);
      if (normalized === undefined || !server) return undefined;
      const address = (context.mode === "proxy" ? claims : bound).addressOf(normalized, now());
      return address === undefined ? undefined : formatIpv4(address);
    },

    health(): ServiceHealth {
      if (config.dhcp.mode === "off") return { ok: true, detail: "off" };
      return server?.listening ? { ok: true } : { ok: false, detail: `DHCP is not listening on ${config.interface}` };
    },
  };
}
