import { formatIpv4 } from "../config/primitives.js";
import {
  decideBoot,
  detectFirmware,
  type Firmware,
  isNetworkBootClient,
  type ClientHints,
  type FirmwareTable,
} from "../boot/firmware.js";
import { type BootChain, machineBootloaderUrl } from "../boot/boot-chain.js";
import type { Sighting } from "../contracts/sighting.js";
import type { AddressBook } from "./address-book.js";
import { replyDestination, type Destination } from "./destination.js";
import { MessageType, messageTypeName, Option } from "./options.js";
import {
  addressBytes,
  addressListBytes,
  BootOp,
  BROADCAST_FLAG,
  clientArchitecture,
  hardwareAddress,
  machineUuid,
  maxMessageSize,
  messageType,
  optionAddress,
  optionString,
  uint32Bytes,
  userClasses,
  type DhcpPacket,
} from "./packet.js";
import type { IntakeLane } from "./intake.js";
import type { AddressPool, PoolLease } from "./pool.js";
import type { Budget, PerClientRateLimit } from "./rate-limit.js";

/**
 * The DHCP decisions of RFC 2131 §4.3 and PXE, as a function: request + context → reply or a reason
 * to stay silent, plus the lease changes that must be durable before the reply leaves. No sockets,
 * no store, no logger; the clock is `context.now`.
 */

/** One subnet we hand out addresses in: the interface's own, or one behind a relay. */
export interface SubnetPlan {
  network: number;
  mask: number;
  broadcast: number;
  router?: number;
  dns: number[];
  domain?: string;
  leaseSeconds: number;
  pool: AddressPool;
  /** `10.0.100.0/24`, for logs. */
  label: string;
}

/** What the inventory knows about a MAC (config `nodes`, later the database). */
export interface NodeReservation {
  ipAddress?: number;
  hostname?: string;
}

/** What the boot answer is decided from: data, so the handler knows nothing of the product's files. */
export interface BootAnswers {
  /** Option 93 code → firmware and its bootloaders in order of preference (src/boot `FIRMWARE_TABLE`). */
  firmware: FirmwareTable;
  /** The bootloader file names installed now (`stateDir/ipxe`); asked once per boot answer. */
  installed(): ReadonlySet<string>;
  /** Where HTTP serves bootloaders and the entry script, `http://host[:port]/boot/ipxe`. */
  httpBase: string;
  /**
   * The boot chain the machine's profile or node asks for (src/boot `bootChainOf`); iPXE without it.
   * `message` is the request's option 53 name (`DISCOVER`, `REQUEST`, `INFORM`): only a DISCOVER
   * can begin a new firmware boot attempt (src/boot `decideFlavour`).
   */
  chainFor?(mac: string, firmware: Firmware, message: string): BootChain;
  /** Where UEFI HTTP boot firmware gets its bootloader (https:// when it trusts our CA); default httpBase. */
  firmwareHttpBase?: string;
}

export interface DhcpContext {
  mode: "server" | "proxy";
  serverAddress: number;
  /** The first is the configured interface's subnet (used when giaddr is 0). */
  subnets: readonly SubnetPlan[];
  /**
   * `giaddr` values we serve relayed packets from (`dhcp.relays`). Anyone can write a giaddr, so
   * without this list a client on our link could take leases from a relayed subnet.
   */
  relays: ReadonlySet<number>;
  lookupNode(mac: string): NodeReservation | undefined;
  boot: BootAnswers;
  rateLimit?: PerClientRateLimit;
  /** What MACs we hold nothing for may cost (`dhcp.budgets.newClients`); unlimited without it. */
  newClients?: Budget;
  /**
   * Proxy mode: the address each MAC last asked the site's DHCP server for (option 50 or ciaddr of
   * its REQUEST), recorded here for `addressOf`. Clients in it count as known for `newClients`.
   */
  claims?: AddressBook;
  now: number;
  /** How long a DECLINEd address stays out of the pool. */
  declineQuarantineMs?: number;
  /**
   * Several servers share the leases (PostgreSQL): an OFFER from the pool is claimed in the store
   * (an `offered` row) before it leaves, so no other server offers that address to another client
   * meanwhile, and a clash costs an OFFER of another address rather than a NAK.
   */
  claimOffers?: boolean;
}

export type HandleResult =
  | {
      kind: "reply";
      reply: DhcpPacket;
      destination: Destination;
      maxSize: number;
      /** Lease changes to make durable before the reply is sent. */
      persist: PoolLease[];
      seen?: Sighting;
      /** Operator-facing remarks (a refused bootloader, …), logged at warn. */
      warnings: string[];
    }
  | {
      kind: "ignore";
      reason: string;
      persist: PoolLease[];
      seen?: Sighting;
      warnings: string[];
      /** worth an operator's attention */
      notable?: boolean;
      /** a drop with a counter of its own in `DhcpCounters` */
      count?: IgnoreCounter;
      /**
       * The MAC of a client we have no record of, silent as RFC 2131 §4.3.2 says; a server sharing
       * its leases may look it up in the shared store and handle the request again (§4.4.5).
       */
      missed?: string;
    };

/** Deliberate drops that `/metrics` counts apart: floods and forgeries. */
export type IgnoreCounter = "untrustedRelay" | "newClientsDropped";

/** Where the request came in. `pxe` is the proxyDHCP boot-server port 4011. */
export interface RequestSource {
  address: number;
  port: number;
  pxePort: boolean;
}

const DEFAULT_QUARANTINE_MS = 10 * 60_000;

function ignore(reason: string, extra: Partial<Extract<HandleResult, { kind: "ignore" }>> = {}): HandleResult {
  return { kind: "ignore", reason, persist: [], warnings: [], ...extra };
}

function hintsOf(request: DhcpPacket): ClientHints {
  return {
    arch: clientArchitecture(request),
    userClasses: userClasses(request),
    vendorClass: optionString(request, Option.VendorClassIdentifier),
  };
}

function selectSubnet(request: DhcpPacket, context: DhcpContext): SubnetPlan | undefined {
  if (request.giaddr === 0) return context.subnets[0];
  return context.subnets.find((s) => (request.giaddr & s.mask) >>> 0 === s.network);
}

export function handle(
  request: DhcpPacket,
  context: DhcpContext,
  source: RequestSource = { address: 0, port: 68, pxePort: false },
): HandleResult {
  if (request.op !== BootOp.Request) return ignore("not a BOOTREQUEST");
  if (request.hlen === 0) return ignore("no hardware address (hlen 0)");
  const type = messageType(request);
  if (type === undefined) return ignore("plain BOOTP (no option 53) is not served");
  const mac = hardwareAddress(request);
  if (context.rateLimit && !context.rateLimit.allow(mac, context.now))
    return ignore(`rate limit: ${mac} sends too many packets`, { notable: true });
  if (request.giaddr !== 0 && !context.relays.has(request.giaddr)) {
    return ignore(
      `relayed via ${formatIpv4(request.giaddr)}, which is not a trusted relay (add it to dhcp.relays if it is one)`,
      {
        notable: true,
        count: "untrustedRelay",
      },
    );
  }
  if (context.newClients && !isKnownClient(mac, context)) {
    const verdict = context.newClients.take(mac, context.now);
    if (verdict !== "allowed") {
      const which = verdict === "global" ? "all new clients together" : "this MAC";
      return ignore(`new-client budget spent (${which}, dhcp.budgets.newClients): ${mac} not answered`, {
        notable: true,
        count: "newClientsDropped",
      });
    }
  }

  const hints = hintsOf(request);
  const bootClient = isNetworkBootClient(hints);
  // Only an Ethernet address (htype 1, hlen 6) names a machine the inventory can hold; anything
  // else is a malformed or foreign client and is answered, if at all, without being recorded.
  const ethernet = request.htype === 1 && request.hlen === 6;
  const seen: Sighting | undefined =
    ethernet && bootClient && (type === MessageType.Discover || type === MessageType.Request)
      ? {
          mac,
          firmware: detectFirmware(hints, context.boot.firmware),
          arch: hints.arch,
          uuid: machineUuid(request),
          userClass: hints.userClasses[0],
          via: "dhcp",
        }
      : undefined;

  if (context.mode === "proxy") {
    if (type === MessageType.Request && !source.pxePort) recordClaim(request, mac, context);
    return withSeen(handleProxy(request, type, hints, context, source), seen);
  }

  if (source.pxePort) return ignore("port 4011 is served in proxy mode only", { seen });
  const subnet = selectSubnet(request, context);
  if (!subnet)
    return ignore(
      `relayed from ${formatIpv4(request.giaddr)}, which is in no configured subnet (add it to dhcp.subnets)`,
      { seen, notable: true },
    );

  switch (type) {
    case MessageType.Discover:
      return withSeen(discover(request, mac, hints, subnet, context), seen);
    case MessageType.Request:
      return withSeen(requestMessage(request, mac, hints, subnet, context), seen);
    case MessageType.Decline:
      return decline(request, mac, subnet, context);
    case MessageType.Release:
      return release(request, mac, subnet, context);
    case MessageType.Inform:
      return inform(request, hints, subnet, context);
    default:
      return ignore(`${messageTypeName(type)} is not a client message`);
  }
}

/**
 * Which lane of the intake (intake.ts) a request waits in when the server cannot keep up: a client
 * already in an exchange with us goes ahead of every new DISCOVER. A DISCOVER always starts a new
 * exchange (a retransmitted one too: its client has not seen our OFFER). Anything else counts as in
 * progress only from a MAC we hold a reservation, lease or live offer for, so a stranger forging
 * REQUESTs from made-up MACs waits with the DISCOVERs. In proxy mode we hold no offers: every
 * REQUEST (on 67 or 4011) is the second half of an exchange a PXE ROM began.
 */
export function intakeLane(request: DhcpPacket, context: DhcpContext): IntakeLane {
  const type = messageType(request);
  if (type === undefined || type === MessageType.Discover || request.op !== BootOp.Request) return "fresh";
  if (context.mode === "proxy") return "inProgress";
  return isKnownClient(hardwareAddress(request), context) ? "inProgress" : "fresh";
}

/**
 * A client we hold something for: a reservation, a lease record or a live offer in any subnet, or
 * (proxy mode) a recent REQUEST. Everything else is a new client, and new clients cost budget.
 */
function isKnownClient(mac: string, context: DhcpContext): boolean {
  if (context.lookupNode(mac)) return true;
  for (const subnet of context.subnets) {
    if (subnet.pool.leaseOf(mac) || subnet.pool.offerOf(mac, context.now) !== undefined) return true;
  }
  return context.claims?.has(mac, context.now) ?? false;
}

/** Proxy mode: remember the address a client asks the site's DHCP server for (option 50, else ciaddr). */
function recordClaim(request: DhcpPacket, mac: string, context: DhcpContext): void {
  const wanted = optionAddress(request, Option.RequestedIpAddress) ?? request.ciaddr;
  const leaseSeconds = context.subnets[0]?.leaseSeconds;
  if (!context.claims || wanted === 0 || leaseSeconds === undefined) return;
  context.claims.bind(mac, wanted, context.now + leaseSeconds * 1000);
}

function withSeen(result: HandleResult, seen: Sighting | undefined): HandleResult {
  if (seen) result.seen = seen;
  return result;
}

/** The fixed address of a known node, when it lies in this subnet. */
function reservedAddress(
  mac: string,
  subnet: SubnetPlan,
  context: DhcpContext,
): { node?: NodeReservation; fixed?: number } {
  const node = context.lookupNode(mac);
  const fixed = node?.ipAddress;
  if (fixed === undefined || (fixed & subnet.mask) >>> 0 !== subnet.network) return { node };
  // Config validation keeps fixed addresses out of the pool, but the inventory (database) may not:
  // a fixed address inside the pool that another client holds is not handed out twice.
  if (subnet.pool.contains(fixed) && !subnet.pool.isAvailableTo(fixed, mac, context.now)) return { node };
  return { node, fixed };
}

function discover(
  request: DhcpPacket,
  mac: string,
  hints: ClientHints,
  subnet: SubnetPlan,
  context: DhcpContext,
): HandleResult {
  const { node, fixed } = reservedAddress(mac, subnet, context);
  let address = fixed;
  if (address === undefined) {
    address = subnet.pool.choose(mac, optionAddress(request, Option.RequestedIpAddress), context.now);
    if (address === undefined) {
      const usage = subnet.pool.usage(context.now);
      return ignore(
        `no free address for ${mac} in ${subnet.label}: all ${usage.size} addresses of ${formatIpv4(subnet.pool.start)}-${formatIpv4(subnet.pool.end)} are leased (${usage.bound}) or quarantined after a conflict (${usage.declined}); widen dhcp.range, shorten dhcp.leaseTime, or give known machines fixed addresses in nodes`,
        { notable: true },
      );
    }
    subnet.pool.hold(mac, address, context.now);
    if (context.claimOffers) {
      const offered: PoolLease = {
        address,
        mac,
        clientId: request.options.get(Option.ClientIdentifier)?.toString("hex"),
        hostname: node?.hostname ?? optionString(request, Option.HostName),
        expiresAt: context.now + subnet.pool.offerHold,
        state: "offered",
      };
      return reply(request, MessageType.Offer, address, hints, subnet, context, node, [offered]);
    }
  }
  return reply(request, MessageType.Offer, address, hints, subnet, context, node, []);
}

function requestMessage(
  request: DhcpPacket,
  mac: string,
  hints: ClientHints,
  subnet: SubnetPlan,
  context: DhcpContext,
): HandleResult {
  const serverId = optionAddress(request, Option.ServerIdentifier);
  const requested = optionAddress(request, Option.RequestedIpAddress);
  let wanted: number;
  let state: string;
  if (serverId !== undefined) {
    // RFC 2131 §4.3.2 SELECTING: the client broadcasts its choice; another server's choice frees our offer.
    if (serverId !== context.serverAddress) {
      subnet.pool.dropOffer(mac);
      return ignore(`${mac} chose server ${formatIpv4(serverId)}`);
    }
    state = "selecting";
    wanted = requested ?? request.ciaddr;
  } else if (requested !== undefined) {
    state = "init-reboot";
    wanted = requested;
  } else if (request.ciaddr !== 0) {
    state = "renewing";
    wanted = request.ciaddr;
  } else {
    return ignore(`REQUEST from ${mac} names no address (neither option 50 nor ciaddr)`);
  }

  const nak = (why: string) => nakReply(request, subnet, context, `${state}: ${why}`);
  const { node, fixed } = reservedAddress(mac, subnet, context);
  if ((wanted & subnet.mask) >>> 0 !== subnet.network) return nak(`${formatIpv4(wanted)} is not on ${subnet.label}`);
  if (fixed !== undefined) {
    if (wanted !== fixed) return nak(`${mac} is reserved ${formatIpv4(fixed)}, not ${formatIpv4(wanted)}`);
  } else {
    if (!subnet.pool.contains(wanted)) return nak(`${formatIpv4(wanted)} is outside the pool`);
    if (!subnet.pool.isAvailableTo(wanted, mac, context.now))
      return nak(`${formatIpv4(wanted)} belongs to another client`);
    if (state !== "selecting") {
      // RFC 2131 §4.3.2 (INIT-REBOOT, and RENEWING/REBINDING alike): a server verifies the address
      // against its record of the client; "if the server has no record of this client, then it MUST
      // remain silent". An ACK here would let any MAC bind any free address without an OFFER.
      const recorded = subnet.pool.leaseOf(mac)?.address ?? subnet.pool.offerOf(mac, context.now);
      if (recorded === undefined) {
        return ignore(
          `${state} REQUEST from ${mac} for ${formatIpv4(wanted)}: no record of this client, so no answer (RFC 2131 §4.3.2); it will DISCOVER`,
          { notable: true, missed: mac },
        );
      }
      if (recorded !== wanted) return nak(`${mac} was given ${formatIpv4(recorded)}, not ${formatIpv4(wanted)}`);
    }
  }
  const lease: PoolLease = {
    address: wanted,
    mac,
    clientId: request.options.get(Option.ClientIdentifier)?.toString("hex"),
    hostname: node?.hostname ?? optionString(request, Option.HostName),
    expiresAt: context.now + subnet.leaseSeconds * 1000,
    state: "bound",
  };
  if (fixed === undefined || subnet.pool.contains(fixed)) {
    subnet.pool.put(lease);
    subnet.pool.dropOffer(mac);
  }
  return reply(request, MessageType.Ack, wanted, hints, subnet, context, node, [lease]);
}

function nakReply(request: DhcpPacket, _subnet: SubnetPlan, context: DhcpContext, why: string): HandleResult {
  const nak = baseReply(request);
  // RFC 2131 §4.3.2: a relayed NAK carries the broadcast bit so the relay broadcasts it.
  if (request.giaddr !== 0) nak.flags |= BROADCAST_FLAG;
  nak.options.set(Option.MessageType, messageTypeBytes(MessageType.Nak));
  nak.options.set(Option.ServerIdentifier, serverIdentifierBytes(context.serverAddress));
  nak.options.set(Option.Message, Buffer.from(why.slice(0, 200), "latin1"));
  echoRelayAgent(request, nak);
  return {
    kind: "reply",
    reply: nak,
    destination: replyDestination(request, MessageType.Nak, nak),
    maxSize: maxMessageSize(request),
    persist: [],
    warnings: [],
  };
}

function decline(request: DhcpPacket, mac: string, subnet: SubnetPlan, context: DhcpContext): HandleResult {
  const address = optionAddress(request, Option.RequestedIpAddress);
  const serverId = optionAddress(request, Option.ServerIdentifier);
  if (serverId !== undefined && serverId !== context.serverAddress) return ignore("DECLINE for another server");
  if (address === undefined || !subnet.pool.contains(address))
    return ignore(`DECLINE from ${mac} for an address outside the pool`);
  // RFC 2131 §4.3.3: the client that was given the address found it in use. Only that client can
  // know: a DECLINE from anyone else would let a stranger empty the pool or void another's offer.
  const held = subnet.pool.leaseOf(mac);
  const holdsLease = held?.address === address && held.state === "bound" && held.expiresAt > context.now;
  if (!holdsLease && subnet.pool.offerOf(mac, context.now) !== address) {
    return ignore(`DECLINE from ${mac} for ${formatIpv4(address)}, which it neither holds nor was offered`, {
      notable: true,
    });
  }
  const quarantineMs = context.declineQuarantineMs ?? DEFAULT_QUARANTINE_MS;
  // RFC 2131 §4.3.3: the address is in use by something we do not know; keep it out of the pool.
  const lease: PoolLease = { address, mac: "", expiresAt: context.now + quarantineMs, state: "declined" };
  subnet.pool.put(lease);
  subnet.pool.dropOffer(mac);
  return ignore(
    `${mac} declined ${formatIpv4(address)}: another host on the network already uses it; kept out of the pool for ${Math.round(quarantineMs / 1000)}s`,
    {
      persist: [lease],
      notable: true,
    },
  );
}

function release(request: DhcpPacket, mac: string, subnet: SubnetPlan, context: DhcpContext): HandleResult {
  const { fixed, node } = reservedAddress(mac, subnet, context);
  if (fixed !== undefined && fixed === request.ciaddr) {
    // A reserved address stays reserved; the record only says the machine let go of it.
    const released: PoolLease = {
      address: fixed,
      mac,
      hostname: node?.hostname,
      expiresAt: context.now,
      state: "released",
    };
    return ignore(`${mac} released its reserved ${formatIpv4(fixed)}`, { persist: [released] });
  }
  const lease = subnet.pool.leaseAt(request.ciaddr);
  if (!lease || lease.mac !== mac || lease.state !== "bound")
    return ignore(`RELEASE from ${mac} for ${formatIpv4(request.ciaddr)}, which it does not hold`);
  // Keep the MAC on the record: the client gets the same address back next time if it is still free.
  const released: PoolLease = { ...lease, state: "released", expiresAt: context.now };
  subnet.pool.put(released);
  return ignore(`${mac} released ${formatIpv4(request.ciaddr)}`, { persist: [released] });
}

function inform(request: DhcpPacket, hints: ClientHints, subnet: SubnetPlan, context: DhcpContext): HandleResult {
  if (request.ciaddr === 0) return ignore("INFORM without ciaddr");
  return reply(request, MessageType.Ack, 0, hints, subnet, context, undefined, []);
}

/** The parts every reply shares (RFC 2131 §4.3.1 table 3). */
function baseReply(request: DhcpPacket): DhcpPacket {
  return {
    op: BootOp.Reply,
    htype: request.htype,
    hlen: request.hlen,
    hops: 0,
    xid: request.xid,
    secs: 0,
    flags: request.flags & BROADCAST_FLAG,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    sname: "",
    file: "",
    options: new Map(),
  };
}

function echoRelayAgent(request: DhcpPacket, reply: DhcpPacket): void {
  // RFC 3046 §2.2: the relay expects its option 82 back unchanged, as the last option.
  const agent = request.options.get(Option.RelayAgentInformation);
  if (agent && request.giaddr !== 0) reply.options.set(Option.RelayAgentInformation, agent);
}

/**
 * Options in the order the client asked for them (option 55), then the rest: some firmware reads
 * only as far as it needs, and a client's `maxSize` may cut the tail.
 */
function orderByRequestList(request: DhcpPacket, options: Map<number, Buffer>): Map<number, Buffer> {
  const list = request.options.get(Option.ParameterRequestList);
  const ordered = new Map<number, Buffer>();
  for (const code of [Option.MessageType, Option.ServerIdentifier, Option.LeaseTime]) {
    const v = options.get(code);
    if (v) ordered.set(code, v);
  }
  if (list)
    for (const code of list) {
      const v = options.get(code);
      if (v && !ordered.has(code)) ordered.set(code, v);
    }
  for (const [code, v] of options)
    if (!ordered.has(code) && code !== Option.RelayAgentInformation) ordered.set(code, v);
  const agent = options.get(Option.RelayAgentInformation);
  if (agent) ordered.set(Option.RelayAgentInformation, agent);
  return ordered;
}

/** PXE 2.1 §2.2.5 option 43 sub-option 6 = 8: boot the file named in this reply, no menu, no discovery. */
const PXE_VENDOR_OPTIONS = Buffer.from([6, 1, 8, 255]);

/** Boot fields: `siaddr`, `file`, options 66/67, and the option 60/43/97 answers PXE ROMs expect. */
function addBoot(
  request: DhcpPacket,
  reply: DhcpPacket,
  hints: ClientHints,
  context: DhcpContext,
  warnings: string[],
): boolean {
  if (!isNetworkBootClient(hints)) return false;
  const chain = context.boot.chainFor?.(
    hardwareAddress(request),
    detectFirmware(hints, context.boot.firmware),
    messageTypeName(messageType(request)),
  );
  const decision = decideBoot(
    hints,
    context.boot.installed(),
    context.boot.httpBase,
    context.boot.firmware,
    context.boot.firmwareHttpBase,
    chain,
  );
  if (decision.kind === "none") {
    warnings.push(`no boot answer for ${hardwareAddress(request)}: ${decision.reason}`);
    return false;
  }
  const server = formatIpv4(context.serverAddress);
  reply.siaddr = context.serverAddress;
  reply.options.set(Option.TftpServerName, Buffer.from(server, "latin1"));
  // `localBoot: http-404` on UEFI HTTP boot: a URL naming the machine, so that once it is installed
  // its firmware's own download can be answered 404 (src/http/app.ts).
  const file =
    decision.kind === "tftp"
      ? decision.filename
      : decision.httpClient && chain?.localBoot === "http-404"
        ? machineBootloaderUrl(decision.url, hardwareAddress(request))
        : decision.url;
  reply.file = file;
  reply.options.set(Option.BootfileName, Buffer.from(file, "latin1"));
  if (decision.kind === "http" && decision.httpClient) {
    // UEFI HTTP boot ignores offers that do not echo `HTTPClient` (UEFI 2.x §24.7.2).
    reply.options.set(Option.VendorClassIdentifier, Buffer.from("HTTPClient", "latin1"));
  } else if ((hints.vendorClass ?? "").startsWith("PXEClient") && decision.firmware !== "ipxe") {
    // PXE ROMs treat an offer without `PXEClient` as not for them, and without option 43 some
    // (older Intel and Broadcom ROMs) wait for a boot-server discovery that never comes.
    reply.options.set(Option.VendorClassIdentifier, Buffer.from("PXEClient", "latin1"));
    reply.options.set(Option.VendorSpecific, PXE_VENDOR_OPTIONS);
  }
  // PXE ROMs in the wild check that their GUID comes back before they accept the offer.
  const guid = request.options.get(Option.ClientMachineIdentifier);
  if (guid) reply.options.set(Option.ClientMachineIdentifier, guid);
  return true;
}

/**
 * A subnet's options as bytes, the same in every reply on it: built once per plan (a reload plans
 * its subnets anew) instead of a dozen small Buffers per reply. Shared between replies, so never
 * written to: `encode` only copies them.
 */
interface SubnetOptionBytes {
  leaseTime: Buffer;
  renewalTime: Buffer;
  rebindingTime: Buffer;
  mask: Buffer;
  router?: Buffer;
  dns?: Buffer;
  domain?: Buffer;
  broadcast: Buffer;
}

const optionBytesByPlan = new WeakMap<SubnetPlan, SubnetOptionBytes>();

function subnetOptionBytes(subnet: SubnetPlan): SubnetOptionBytes {
  let bytes = optionBytesByPlan.get(subnet);
  if (!bytes) {
    bytes = {
      leaseTime: uint32Bytes(subnet.leaseSeconds),
      renewalTime: uint32Bytes(Math.floor(subnet.leaseSeconds / 2)),
      rebindingTime: uint32Bytes(Math.floor((subnet.leaseSeconds * 7) / 8)),
      mask: addressBytes(subnet.mask),
      ...(subnet.router !== undefined ? { router: addressBytes(subnet.router) } : {}),
      ...(subnet.dns.length ? { dns: addressListBytes(subnet.dns) } : {}),
      ...(subnet.domain ? { domain: Buffer.from(subnet.domain, "latin1") } : {}),
      broadcast: addressBytes(subnet.broadcast),
    };
    optionBytesByPlan.set(subnet, bytes);
  }
  return bytes;
}

/** Option 53's value per message type, shared by every reply (never written to). */
const MESSAGE_TYPE_BYTES = new Map<number, Buffer>();
function messageTypeBytes(type: MessageType): Buffer {
  let bytes = MESSAGE_TYPE_BYTES.get(type);
  if (!bytes) MESSAGE_TYPE_BYTES.set(type, (bytes = Buffer.from([type])));
  return bytes;
}

/** Option 54's value: the server's address changes only on a reload. */
let serverIdentifier: { address: number; bytes: Buffer } = { address: -1, bytes: Buffer.alloc(4) };
function serverIdentifierBytes(address: number): Buffer {
  if (serverIdentifier.address !== address) serverIdentifier = { address, bytes: addressBytes(address) };
  return serverIdentifier.bytes;
}

function reply(
  request: DhcpPacket,
  type: MessageType,
  address: number,
  hints: ClientHints,
  subnet: SubnetPlan,
  context: DhcpContext,
  node: NodeReservation | undefined,
  persist: PoolLease[],
): HandleResult {
  const out = baseReply(request);
  out.yiaddr = address;
  if (type === MessageType.Ack && request.ciaddr !== 0) out.ciaddr = request.ciaddr;
  const options = out.options;
  const bytes = subnetOptionBytes(subnet);
  options.set(Option.MessageType, messageTypeBytes(type));
  options.set(Option.ServerIdentifier, serverIdentifierBytes(context.serverAddress));
  if (address !== 0) {
    // RFC 2131 §4.3.1: lease time in OFFER and ACK, never in an ACK to INFORM.
    options.set(Option.LeaseTime, bytes.leaseTime);
    options.set(Option.RenewalTime, bytes.renewalTime);
    options.set(Option.RebindingTime, bytes.rebindingTime);
  }
  options.set(Option.SubnetMask, bytes.mask);
  if (bytes.router) options.set(Option.Router, bytes.router);
  if (bytes.dns) options.set(Option.DomainNameServer, bytes.dns);
  if (bytes.domain) options.set(Option.DomainName, bytes.domain);
  options.set(Option.BroadcastAddress, bytes.broadcast);
  if (node?.hostname) options.set(Option.HostName, Buffer.from(node.hostname, "latin1"));
  const warnings: string[] = [];
  addBoot(request, out, hints, context, warnings);
  echoRelayAgent(request, out);
  out.options = orderByRequestList(request, options);
  return {
    kind: "reply",
    reply: out,
    destination: replyDestination(request, type, out),
    maxSize: maxMessageSize(request),
    persist,
    warnings,
  };
}

/**
 * proxyDHCP (PXE 2.1 §2.2.3), as dnsmasq and Pixiecore do it: beside a DHCP server that hands out
 * addresses, answer PXE clients only, with boot information and no address, on 67 and on 4011.
 */
function handleProxy(
  request: DhcpPacket,
  type: number,
  hints: ClientHints,
  context: DhcpContext,
  source: RequestSource,
): HandleResult {
  if (!isNetworkBootClient(hints)) return ignore("proxy mode: not a PXE client");
  let replyType: MessageType;
  if (source.pxePort) {
    if (type !== MessageType.Request && type !== MessageType.Inform)
      return ignore(`proxy mode: ${messageTypeName(type)} on port 4011`);
    replyType = MessageType.Ack;
  } else if (type === MessageType.Discover) {
    replyType = MessageType.Offer;
  } else if (
    type === MessageType.Request &&
    optionAddress(request, Option.ServerIdentifier) === context.serverAddress
  ) {
    // Some ROMs send their REQUEST to whichever offer had the boot file, i.e. to us.
    replyType = MessageType.Ack;
  } else {
    return ignore(`proxy mode: ${messageTypeName(type)} is for the real DHCP server`);
  }
  const out = baseReply(request);
  if (replyType === MessageType.Ack && request.ciaddr !== 0) out.ciaddr = request.ciaddr;
  out.options.set(Option.MessageType, messageTypeBytes(replyType));
  out.options.set(Option.ServerIdentifier, serverIdentifierBytes(context.serverAddress));
  const warnings: string[] = [];
  if (!addBoot(request, out, hints, context, warnings))
    return ignore(warnings[0] ?? "proxy mode: nothing to boot", { warnings, notable: true });
  // The PXE spec requires option 60 `PXEClient` in every proxy reply, iPXE included.
  if (!out.options.has(Option.VendorClassIdentifier))
    out.options.set(Option.VendorClassIdentifier, Buffer.from("PXEClient", "latin1"));
  echoRelayAgent(request, out);
  out.options = orderByRequestList(request, out.options);
  return {
    kind: "reply",
    reply: out,
    destination: replyDestination(request, replyType, out, source),
    maxSize: maxMessageSize(request),
    persist: [],
    warnings,
  };
}
