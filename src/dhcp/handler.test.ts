import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FIRMWARE_TABLE, httpBootBase } from "../boot/firmware.js";
import { formatIpv4, parseIpv4 } from "../config/primitives.js";
import {
  handle,
  intakeLane,
  type DhcpContext,
  type HandleResult,
  type NodeReservation,
  type SubnetPlan,
} from "./handler.js";
import { MessageType, Option } from "./options.js";
import { BootOp, decode, encode, messageType, optionAddress, optionString, type DhcpPacket } from "./packet.js";
import { AddressPool } from "./pool.js";
import { AddressBook } from "./address-book.js";
import { Budget, PerClientRateLimit } from "./rate-limit.js";
import { readPcap } from "../files/pcap.js";

const ip = (s: string) => parseIpv4(s)!;
const SERVER = ip("10.0.100.10");
const KNOWN_MAC = "52:54:00:12:34:56";
const UNKNOWN_MAC = "52:54:00:aa:aa:01";

function subnet(net: string, start: string, end: string): SubnetPlan {
  return {
    network: ip(net),
    mask: ip("255.255.255.0"),
    broadcast: (ip(net) | 0xff) >>> 0,
    router: (ip(net) | 1) >>> 0,
    dns: [ip("10.0.100.1"), ip("8.8.8.8")],
    leaseSeconds: 3600,
    pool: new AddressPool(ip(start), ip(end)),
    label: `${net}/24`,
  };
}

function makeContext(
  overrides: Partial<DhcpContext> = {},
  installed = new Set(["undionly.kpxe", "ipxe.efi", "snponly.efi"]),
): DhcpContext {
  const nodes: Record<string, NodeReservation> = {
    [KNOWN_MAC]: { ipAddress: ip("10.0.100.50"), hostname: "control-plane-01" },
  };
  return {
    mode: "server",
    serverAddress: SERVER,
    subnets: [
      subnet("10.0.100.0", "10.0.100.100", "10.0.100.102"),
      subnet("10.0.200.0", "10.0.200.100", "10.0.200.200"),
    ],
    relays: new Set([ip("10.0.200.1")]),
    lookupNode: (mac) => nodes[mac],
    boot: { firmware: FIRMWARE_TABLE, installed: () => installed, httpBase: httpBootBase("10.0.100.10", 80) },
    now: 1_000_000,
    ...overrides,
  };
}

interface RequestSpec {
  mac?: string;
  type?: number;
  arch?: number;
  vendor?: string;
  userClass?: string;
  requested?: string;
  serverId?: string;
  ciaddr?: string;
  giaddr?: string;
  broadcast?: boolean;
  prl?: number[];
  extra?: [number, Buffer][];
}

function request(spec: RequestSpec = {}): DhcpPacket {
  const chaddr = Buffer.alloc(16);
  Buffer.from((spec.mac ?? UNKNOWN_MAC).split(":").map((h) => parseInt(h, 16))).copy(chaddr);
  const options = new Map<number, Buffer>([[Option.MessageType, Buffer.from([spec.type ?? MessageType.Discover])]]);
  const addr = (s: string) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(ip(s));
    return b;
  };
  if (spec.requested) options.set(Option.RequestedIpAddress, addr(spec.requested));
  if (spec.serverId) options.set(Option.ServerIdentifier, addr(spec.serverId));
  if (spec.prl) options.set(Option.ParameterRequestList, Buffer.from(spec.prl));
  if (spec.vendor) options.set(Option.VendorClassIdentifier, Buffer.from(spec.vendor));
  if (spec.arch !== undefined)
    options.set(Option.ClientSystemArchitecture, Buffer.from([spec.arch >> 8, spec.arch & 255]));
  if (spec.userClass) options.set(Option.UserClass, Buffer.from(spec.userClass));
  for (const [code, value] of spec.extra ?? []) options.set(code, value);
  const p: DhcpPacket = {
    op: BootOp.Request,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0x1234,
    secs: 0,
    flags: spec.broadcast ? 0x8000 : 0,
    ciaddr: spec.ciaddr ? ip(spec.ciaddr) : 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: spec.giaddr ? ip(spec.giaddr) : 0,
    chaddr,
    sname: "",
    file: "",
    options,
  };
  // Through the wire format, as a real request would come.
  return decode(encode(p));
}

function replyOf(result: HandleResult) {
  assert.equal(result.kind, "reply", result.kind === "ignore" ? result.reason : "");
  return result as Extract<HandleResult, { kind: "reply" }>;
}

function dora(context: DhcpContext, spec: RequestSpec = {}) {
  const offer = replyOf(handle(request(spec), context));
  const ack = replyOf(
    handle(
      request({
        ...spec,
        type: MessageType.Request,
        requested: formatIpv4(offer.reply.yiaddr),
        serverId: "10.0.100.10",
      }),
      context,
    ),
  );
  return { offer, ack };
}

describe("DHCP server decisions (RFC 2131 §4.3)", () => {
  it("offers a pool address with the subnet's options to an unknown machine", () => {
    const r = replyOf(handle(request({ broadcast: true }), makeContext()));
    assert.equal(messageType(r.reply), MessageType.Offer);
    assert.equal(formatIpv4(r.reply.yiaddr), "10.0.100.100");
    assert.equal(optionAddress(r.reply, Option.ServerIdentifier), SERVER);
    assert.equal(formatIpv4(optionAddress(r.reply, Option.SubnetMask)!), "255.255.255.0");
    assert.equal(formatIpv4(optionAddress(r.reply, Option.Router)!), "10.0.100.1");
    assert.equal(r.reply.options.get(Option.LeaseTime)!.readUInt32BE(0), 3600);
    assert.equal(r.reply.options.get(Option.RenewalTime)!.readUInt32BE(0), 1800);
    assert.equal(r.reply.options.get(Option.RebindingTime)!.readUInt32BE(0), 3150);
    assert.equal(r.reply.options.get(Option.DomainNameServer)!.length, 8);
    assert.deepEqual(r.destination, { kind: "broadcast", port: 68 });
    assert.equal(r.persist.length, 0, "an offer is not a lease");
  });

  it("gives a known node its fixed address and hostname (option 12)", () => {
    const { offer, ack } = dora(makeContext(), { mac: KNOWN_MAC });
    assert.equal(formatIpv4(offer.reply.yiaddr), "10.0.100.50");
    assert.equal(optionString(ack.reply, Option.HostName), "control-plane-01");
    assert.equal(ack.persist[0]?.mac, KNOWN_MAC);
  });

  it("ACKs the offered address, persists it, and gives it back on the next DISCOVER", () => {
    const context = makeContext();
    const { ack } = dora(context);
    assert.equal(messageType(ack.reply), MessageType.Ack);
    assert.equal(ack.persist.length, 1);
    assert.equal(ack.persist[0]!.expiresAt, context.now + 3600_000);
    const again = replyOf(handle(request(), context));
    assert.equal(again.reply.yiaddr, ack.reply.yiaddr);
    const other = replyOf(handle(request({ mac: "52:54:00:aa:aa:02" }), context));
    assert.notEqual(other.reply.yiaddr, ack.reply.yiaddr);
  });

  it("never gives an inventory's fixed address inside the pool to a second client", () => {
    const nodes: Record<string, NodeReservation> = {};
    const context = makeContext({ lookupNode: (mac) => nodes[mac] });
    const { ack } = dora(context, { mac: "52:54:00:aa:aa:05" });
    nodes["52:54:00:aa:aa:06"] = { ipAddress: ack.reply.yiaddr, hostname: "late" };
    const offer = replyOf(handle(request({ mac: "52:54:00:aa:aa:06" }), context));
    assert.notEqual(offer.reply.yiaddr, ack.reply.yiaddr);
    const free = ip("10.0.100.102");
    nodes["52:54:00:aa:aa:07"] = { ipAddress: free };
    const fixedInPool = dora(context, { mac: "52:54:00:aa:aa:07" });
    assert.equal(fixedInPool.ack.reply.yiaddr, free);
    assert.equal(context.subnets[0]!.pool.isAvailableTo(free, "52:54:00:aa:aa:08", context.now), false);
  });

  it("unicasts to chaddr+yiaddr when the broadcast flag is clear (RFC 2131 §4.1)", () => {
    const r = replyOf(handle(request(), makeContext()));
    assert.equal(r.destination.kind, "hardware");
  });

  it("holds an offer so two DISCOVERs in a row do not get the same address", () => {
    const context = makeContext();
    const a = replyOf(handle(request({ mac: "52:54:00:aa:aa:01" }), context));
    const b = replyOf(handle(request({ mac: "52:54:00:aa:aa:02" }), context));
    assert.notEqual(a.reply.yiaddr, b.reply.yiaddr);
  });

  it("stays silent when the client chose another server, and frees the offer", () => {
    const context = makeContext();
    const offer = replyOf(handle(request(), context));
    const r = handle(
      request({ type: MessageType.Request, requested: formatIpv4(offer.reply.yiaddr), serverId: "10.0.100.99" }),
      context,
    );
    assert.equal(r.kind, "ignore");
    assert.ok(context.subnets[0]!.pool.isAvailableTo(offer.reply.yiaddr, "52:54:00:aa:aa:09", context.now));
  });

  it("NAKs (broadcast) an INIT-REBOOT for another subnet or another client's address", () => {
    const context = makeContext();
    const wrongNet = replyOf(handle(request({ type: MessageType.Request, requested: "192.168.1.5" }), context));
    assert.equal(messageType(wrongNet.reply), MessageType.Nak);
    assert.deepEqual(wrongNet.destination, { kind: "broadcast", port: 68 });
    const { ack } = dora(context, { mac: "52:54:00:aa:aa:02" });
    const stolen = replyOf(
      handle(request({ type: MessageType.Request, requested: formatIpv4(ack.reply.yiaddr) }), context),
    );
    assert.equal(messageType(stolen.reply), MessageType.Nak);
    const reserved = replyOf(
      handle(request({ mac: KNOWN_MAC, type: MessageType.Request, requested: "10.0.100.101" }), context),
    );
    assert.equal(messageType(reserved.reply), MessageType.Nak, "a node with a fixed address is steered to it");
  });

  it("stays silent on an INIT-REBOOT for a free pool address from a client it has no record of (RFC 2131 §4.3.2)", () => {
    // Before issue 10 this was ACKed ("the server lost its state"): any MAC could bind any free address.
    const r = handle(request({ type: MessageType.Request, requested: "10.0.100.101" }), makeContext());
    assert.equal(r.kind, "ignore");
    assert.match(r.kind === "ignore" ? r.reason : "", /no record of this client/);
    assert.equal(r.persist.length, 0);
  });

  it("renews by unicast to ciaddr", () => {
    const context = makeContext();
    const { ack } = dora(context);
    const address = formatIpv4(ack.reply.yiaddr);
    context.now += 1800_000;
    const renew = replyOf(handle(request({ type: MessageType.Request, ciaddr: address }), context));
    assert.equal(messageType(renew.reply), MessageType.Ack);
    assert.deepEqual(renew.destination, { kind: "unicast", address: ip(address), port: 68 });
    assert.equal(renew.persist[0]!.expiresAt, context.now + 3600_000);
  });

  it("quarantines a DECLINEd address", () => {
    const context = makeContext();
    const { ack } = dora(context);
    const declined = handle(
      request({ type: MessageType.Decline, requested: formatIpv4(ack.reply.yiaddr), serverId: "10.0.100.10" }),
      context,
    );
    assert.equal(declined.kind, "ignore");
    assert.equal(declined.persist[0]?.state, "declined");
    const next = replyOf(handle(request(), context));
    assert.notEqual(next.reply.yiaddr, ack.reply.yiaddr);
  });

  it("RELEASE frees the address but remembers the client", () => {
    const context = makeContext();
    const { ack } = dora(context);
    const released = handle(
      request({ type: MessageType.Release, ciaddr: formatIpv4(ack.reply.yiaddr), serverId: "10.0.100.10" }),
      context,
    );
    assert.equal(released.persist[0]?.state, "released");
    assert.equal(replyOf(handle(request(), context)).reply.yiaddr, ack.reply.yiaddr);
  });

  it("answers INFORM with options but no address or lease time", () => {
    const r = replyOf(handle(request({ type: MessageType.Inform, ciaddr: "10.0.100.77" }), makeContext()));
    assert.equal(r.reply.yiaddr, 0);
    assert.equal(r.reply.options.has(Option.LeaseTime), false);
    assert.deepEqual(r.destination, { kind: "unicast", address: ip("10.0.100.77"), port: 68 });
  });

  it("serves a relayed request from the subnet containing giaddr, replies to the relay, echoes option 82 last", () => {
    const agent = Buffer.from([1, 4, 0, 0, 0, 7]);
    const r = replyOf(
      handle(request({ giaddr: "10.0.200.1", extra: [[Option.RelayAgentInformation, agent]] }), makeContext()),
    );
    assert.equal(formatIpv4(r.reply.yiaddr), "10.0.200.100");
    assert.equal(formatIpv4(optionAddress(r.reply, Option.Router)!), "10.0.200.1");
    assert.deepEqual(r.destination, { kind: "unicast", address: ip("10.0.200.1"), port: 67 });
    assert.equal(r.reply.giaddr, ip("10.0.200.1"));
    assert.deepEqual([...r.reply.options.keys()].at(-1), Option.RelayAgentInformation);
    assert.deepEqual(r.reply.options.get(Option.RelayAgentInformation), agent);
    const unknown = handle(
      request({ giaddr: "172.16.0.1" }),
      makeContext({ relays: new Set([ip("10.0.200.1"), ip("172.16.0.1")]) }),
    );
    assert.equal(unknown.kind, "ignore");
    assert.match(unknown.kind === "ignore" ? unknown.reason : "", /no configured subnet/);
  });

  it("says in words when the pool is exhausted", () => {
    const context = makeContext();
    for (let i = 1; i <= 3; i++) dora(context, { mac: `52:54:00:aa:bb:0${i}` });
    const r = handle(request({ mac: "52:54:00:aa:bb:09" }), context);
    assert.equal(r.kind, "ignore");
    assert.match(
      r.kind === "ignore" ? r.reason : "",
      /no free address.*all 3 addresses of 10\.0\.100\.100-10\.0\.100\.102 are leased \(3\).*widen dhcp\.range/,
    );
  });

  it("reclaims expired leases once the pool has no fresh address", () => {
    const context = makeContext();
    for (let i = 1; i <= 3; i++) dora(context, { mac: `52:54:00:aa:bb:0${i}` });
    context.now += 3601_000;
    const r = replyOf(handle(request({ mac: "52:54:00:aa:bb:09" }), context));
    assert.ok(context.subnets[0]!.pool.contains(r.reply.yiaddr));
  });

  it("lists options in the client's parameter request list order", () => {
    const r = replyOf(
      handle(request({ prl: [Option.DomainNameServer, Option.Router, Option.SubnetMask] }), makeContext()),
    );
    const keys = [...r.reply.options.keys()];
    assert.deepEqual(keys.slice(0, 6), [
      Option.MessageType,
      Option.ServerIdentifier,
      Option.LeaseTime,
      Option.DomainNameServer,
      Option.Router,
      Option.SubnetMask,
    ]);
  });

  it("rate-limits one MAC without affecting others", () => {
    const context = makeContext({ rateLimit: new PerClientRateLimit(5, 1) });
    for (let i = 0; i < 5; i++) assert.equal(handle(request(), context).kind, "reply");
    assert.match((handle(request(), context) as { reason: string }).reason, /rate limit/);
    assert.equal(handle(request({ mac: "52:54:00:aa:aa:03" }), context).kind, "reply");
  });

  it("a flood of spoofed MACs keeps the per-MAC buckets bounded", () => {
    const limit = new PerClientRateLimit(5, 1, 100);
    for (let i = 0; i < 10_000; i++) limit.allow(`m${i}`, 0);
    assert.equal(limit.size, 100);
  });

  it("ignores BOOTREPLYs and plain BOOTP", () => {
    const reply = request();
    reply.op = BootOp.Reply;
    assert.equal(handle(reply, makeContext()).kind, "ignore");
    const bootp = request();
    bootp.options.delete(Option.MessageType);
    assert.match((handle(bootp, makeContext()) as { reason: string }).reason, /BOOTP/);
  });
});

describe("boot answers: firmware × known/unknown × mode", () => {
  const firmware: { name: string; spec: RequestSpec; file: string | undefined; vendor?: string }[] = [
    {
      name: "BIOS PXE",
      spec: { arch: 0, vendor: "PXEClient:Arch:00000:UNDI:002001" },
      file: "undionly.kpxe",
      vendor: "PXEClient",
    },
    {
      name: "UEFI x64 PXE",
      spec: { arch: 7, vendor: "PXEClient:Arch:00007:UNDI:003016" },
      file: "ipxe.efi",
      vendor: "PXEClient",
    },
    {
      name: "iPXE",
      spec: { arch: 0, vendor: "PXEClient:Arch:00000:UNDI:002001", userClass: "iPXE" },
      file: "http://10.0.100.10/boot/ipxe/boot.ipxe",
    },
    {
      name: "UEFI HTTP boot x64",
      spec: { arch: 16, vendor: "HTTPClient:Arch:00016:UNDI:003001" },
      file: "http://10.0.100.10/boot/ipxe/ipxe.efi",
      vendor: "HTTPClient",
    },
    {
      name: "UEFI ARM64 without bootloader",
      spec: { arch: 11, vendor: "PXEClient:Arch:00011:UNDI:003000" },
      file: undefined,
    },
    { name: "an OS (no PXE)", spec: {}, file: undefined },
  ];
  for (const mode of ["server", "proxy"] as const) {
    for (const known of [true, false]) {
      for (const f of firmware) {
        it(`${mode} / ${known ? "known" : "unknown"} / ${f.name}`, () => {
          const context = makeContext({ mode });
          const r = handle(request({ ...f.spec, mac: known ? KNOWN_MAC : UNKNOWN_MAC }), context);
          if (mode === "proxy" && f.file === undefined) {
            assert.equal(r.kind, "ignore", "proxy mode only answers clients it can boot");
            return;
          }
          const { reply } = replyOf(r);
          if (mode === "proxy") assert.equal(reply.yiaddr, 0, "proxy mode hands out no address");
          else assert.equal(formatIpv4(reply.yiaddr), known ? "10.0.100.50" : "10.0.100.100");
          if (f.file === undefined) {
            assert.equal(reply.file, "");
            assert.equal(reply.siaddr, 0);
            return;
          }
          assert.equal(reply.file, f.file);
          assert.equal(optionString(reply, Option.BootfileName), f.file);
          assert.equal(reply.siaddr, SERVER);
          assert.equal(optionString(reply, Option.TftpServerName), "10.0.100.10");
          if (f.vendor) assert.equal(optionString(reply, Option.VendorClassIdentifier), f.vendor);
          if (f.vendor === "PXEClient")
            assert.deepEqual([...reply.options.get(Option.VendorSpecific)!], [6, 1, 8, 255]);
        });
      }
    }
  }

  it("logs why an ARM64 machine gets no bootloader", () => {
    const r = handle(request({ arch: 11, vendor: "PXEClient:Arch:00011" }), makeContext());
    assert.match(r.warnings.join(), /architecture 11.*ipxe-arm64\.efi/);
  });

  it("echoes option 97 and reports the machine to the observer", () => {
    const guid = Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0xab)]);
    const r = replyOf(
      handle(
        request({ arch: 7, vendor: "PXEClient:Arch:00007", extra: [[Option.ClientMachineIdentifier, guid]] }),
        makeContext(),
      ),
    );
    assert.deepEqual(r.reply.options.get(Option.ClientMachineIdentifier), guid);
    assert.deepEqual(r.seen, {
      mac: UNKNOWN_MAC,
      firmware: "efi-x64",
      arch: 7,
      uuid: "abababab-abab-abab-abab-abababababab",
      userClass: undefined,
      via: "dhcp",
    });
  });

  it("proxy mode: answers REQUEST on port 4011 with an ACK to where it came from", () => {
    const context = makeContext({ mode: "proxy" });
    const r = replyOf(
      handle(
        request({ type: MessageType.Request, ciaddr: "10.0.100.150", arch: 7, vendor: "PXEClient:Arch:00007" }),
        context,
        { address: ip("10.0.100.150"), port: 4011, pxePort: true },
      ),
    );
    assert.equal(messageType(r.reply), MessageType.Ack);
    assert.equal(r.reply.file, "ipxe.efi");
    assert.deepEqual(r.destination, { kind: "unicast", address: ip("10.0.100.150"), port: 4011 });
    assert.equal(
      handle(
        request({
          type: MessageType.Request,
          requested: "10.0.100.150",
          serverId: "10.0.100.1",
          arch: 7,
          vendor: "PXEClient",
        }),
        context,
      ).kind,
      "ignore",
      "the real server's REQUEST is not ours",
    );
  });

  it("server mode ignores port 4011", () => {
    assert.equal(
      handle(request({ type: MessageType.Request, arch: 7, vendor: "PXEClient" }), makeContext(), {
        address: 1,
        port: 4011,
        pxePort: true,
      }).kind,
      "ignore",
    );
  });
});

describe("golden requests from real firmware get the §3 answer", () => {
  const requestsIn = (file: string) =>
    readPcap(new URL(`../../testdata/dhcp/${file}`, import.meta.url).pathname)
      .filter((d) => d.destinationPort === 67)
      .map((d) => decode(d.payload));

  it("OVMF's UEFI PXE (arch 7, no iPXE): ipxe.efi over TFTP with PXEClient and option 43", () => {
    const [discover] = requestsIn("ovmf-uefi-pxe.pcap");
    const r = replyOf(handle(discover!, makeContext()));
    assert.equal(r.reply.file, "ipxe.efi");
    assert.equal(optionString(r.reply, Option.VendorClassIdentifier), "PXEClient");
    assert.ok(r.reply.options.has(Option.VendorSpecific));
    assert.deepEqual(
      r.reply.options.get(Option.ClientMachineIdentifier),
      discover!.options.get(Option.ClientMachineIdentifier),
    );
    assert.equal(r.seen?.firmware, "efi-x64");
  });

  it("iPXE in QEMU (user class iPXE): the HTTP entry script", () => {
    const [discover] = requestsIn("ipxe-bios-qemu.pcap");
    const r = replyOf(handle(discover!, makeContext()));
    assert.equal(r.reply.file, "http://10.0.100.10/boot/ipxe/boot.ipxe");
    assert.equal(r.seen?.userClass, "iPXE");
  });

  it("dhclient (an installed OS): an address and no boot file", () => {
    const [discover] = requestsIn("dhclient-dora-release.pcap");
    const r = replyOf(handle(discover!, makeContext()));
    assert.equal(r.reply.file, "");
    assert.equal(r.seen, undefined);
  });
});

describe("trust boundaries (issue 10): what a stranger on the link can no longer do", () => {
  const randomMac = (i: number) =>
    `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

  it("101 INIT-REBOOTs from random MACs bind nothing; the pool still offers its first address", () => {
    const context = makeContext();
    for (let i = 0; i < 101; i++) {
      const r = handle(
        request({ mac: randomMac(i), type: MessageType.Request, requested: `10.0.100.${100 + (i % 3)}` }),
        context,
      );
      assert.equal(r.kind, "ignore");
      assert.equal(r.persist.length, 0);
    }
    assert.equal(formatIpv4(replyOf(handle(request(), context)).reply.yiaddr), "10.0.100.100");
  });

  it("a RENEWING/REBINDING REQUEST (ciaddr only) from a client with no record gets no answer either", () => {
    const r = handle(request({ type: MessageType.Request, ciaddr: "10.0.100.101" }), makeContext());
    assert.equal(r.kind, "ignore");
    assert.equal(r.persist.length, 0);
  });

  it("INIT-REBOOT with a record: ACK for the recorded address, NAK for another", () => {
    const context = makeContext();
    const { ack } = dora(context);
    const address = formatIpv4(ack.reply.yiaddr);
    const reboot = replyOf(handle(request({ type: MessageType.Request, requested: address }), context));
    assert.equal(messageType(reboot.reply), MessageType.Ack);
    const other = address === "10.0.100.101" ? "10.0.100.102" : "10.0.100.101";
    const wrong = replyOf(handle(request({ type: MessageType.Request, requested: other }), context));
    assert.equal(messageType(wrong.reply), MessageType.Nak);
  });

  it("a DECLINE from a MAC that holds nothing quarantines nothing", () => {
    const context = makeContext();
    for (const address of ["10.0.100.100", "10.0.100.101", "10.0.100.102"]) {
      const r = handle(
        request({ mac: "02:00:00:00:00:99", type: MessageType.Decline, requested: address, serverId: "10.0.100.10" }),
        context,
      );
      assert.equal(r.kind, "ignore");
      assert.equal(r.persist.length, 0, "nothing to make durable");
      assert.match(r.kind === "ignore" ? r.reason : "", /neither holds nor was offered/);
    }
    assert.equal(context.subnets[0]!.pool.usage(context.now).declined, 0);
    assert.equal(formatIpv4(replyOf(handle(request(), context)).reply.yiaddr), "10.0.100.100");
  });

  it("a stranger's DECLINE of an address offered to another client does not make that client's REQUEST NAK", () => {
    const context = makeContext();
    const offer = replyOf(handle(request({ mac: "52:54:00:aa:aa:01" }), context));
    const offered = formatIpv4(offer.reply.yiaddr);
    const stranger = handle(
      request({ mac: "02:00:00:00:00:66", type: MessageType.Decline, requested: offered, serverId: "10.0.100.10" }),
      context,
    );
    assert.equal(stranger.persist.length, 0);
    const ack = replyOf(
      handle(
        request({ mac: "52:54:00:aa:aa:01", type: MessageType.Request, requested: offered, serverId: "10.0.100.10" }),
        context,
      ),
    );
    assert.equal(messageType(ack.reply), MessageType.Ack);
  });

  it("the client an address was offered to may DECLINE it (an ARP probe found it in use)", () => {
    const context = makeContext();
    const offer = replyOf(handle(request(), context));
    const r = handle(
      request({ type: MessageType.Decline, requested: formatIpv4(offer.reply.yiaddr), serverId: "10.0.100.10" }),
      context,
    );
    assert.equal(r.persist[0]?.state, "declined");
  });

  it("a stranger's RELEASE of another client's lease changes nothing", () => {
    const context = makeContext();
    const { ack } = dora(context);
    const r = handle(
      request({
        mac: "02:00:00:00:00:77",
        type: MessageType.Release,
        ciaddr: formatIpv4(ack.reply.yiaddr),
        serverId: "10.0.100.10",
      }),
      context,
    );
    assert.equal(r.persist.length, 0);
    assert.equal(context.subnets[0]!.pool.leaseAt(ack.reply.yiaddr)?.state, "bound");
  });

  it("a local client forging giaddr gets nothing from a relayed subnet unless the relay is trusted", () => {
    const forged = handle(request({ giaddr: "10.0.200.1" }), makeContext({ relays: new Set() }));
    assert.equal(forged.kind, "ignore");
    assert.equal(forged.kind === "ignore" ? forged.count : undefined, "untrustedRelay");
    assert.equal(handle(request({ giaddr: "10.0.200.1" }), makeContext()).kind, "reply", "a listed relay is served");
  });

  it("new-client budget: a flood of new MACs is cut at the budget, counted, and a known client is still served", () => {
    const context = makeContext({
      newClients: new Budget({ rate: 1, burst: 5, perMacBurst: 3, perMacIntervalMs: 60_000 }),
    });
    const { ack } = dora(context, { mac: "52:54:00:aa:aa:01" });
    let served = 0;
    let dropped = 0;
    for (let i = 0; i < 50; i++) {
      const r = handle(request({ mac: randomMac(i) }), context);
      if (r.kind === "reply") served++;
      else if (r.count === "newClientsDropped") dropped++;
    }
    assert.ok(served <= 5, `served ${served}`);
    assert.ok(dropped >= 45, `dropped ${dropped}`);
    const renew = replyOf(
      handle(
        request({ mac: "52:54:00:aa:aa:01", type: MessageType.Request, ciaddr: formatIpv4(ack.reply.yiaddr) }),
        context,
      ),
    );
    assert.equal(messageType(renew.reply), MessageType.Ack);
    assert.equal(
      replyOf(handle(request({ mac: KNOWN_MAC }), context)).reply.yiaddr,
      ip("10.0.100.50"),
      "a reserved node is known",
    );
  });

  it("new-client budget: one new MAC cannot spend the budget of all the others", () => {
    const context = makeContext({
      newClients: new Budget({ rate: 1, burst: 5, perMacBurst: 2, perMacIntervalMs: 60_000 }),
    });
    const ignoredOffers = context.subnets[0]!.pool;
    for (let i = 0; i < 10; i++) {
      ignoredOffers.dropOffer(UNKNOWN_MAC); // stays new: as if every offer lapsed
      handle(request(), context);
    }
    assert.equal(handle(request({ mac: "52:54:00:aa:aa:02" }), context).kind, "reply");
  });

  it("proxy mode records the address a client REQUESTs from the site's server (for addressOf)", () => {
    const claims = new AddressBook();
    const context = makeContext({ mode: "proxy", claims });
    // dhclient in an installer: not a PXE client, and its REQUEST is for the real server.
    const r = handle(
      request({ type: MessageType.Request, requested: "10.0.100.150", serverId: "10.0.100.1" }),
      context,
    );
    assert.equal(r.kind, "ignore");
    assert.equal(claims.addressOf(UNKNOWN_MAC, context.now), ip("10.0.100.150"));
    assert.equal(claims.addressOf(UNKNOWN_MAC, context.now + 3600_000), undefined, "kept for the lease time");
  });
});

describe("boot chain per machine (chainFor)", () => {
  it("answers the machine's chain, told which firmware asks and its message (iPXE's own DHCP is no firmware attempt)", () => {
    const asked: string[] = [];
    const context = makeContext(
      {},
      new Set(["undionly.kpxe", "ipxe.efi", "snponly.efi", "shimx64.efi", "grubx64.efi"]),
    );
    context.boot = {
      ...context.boot,
      chainFor: (mac, firmware, message) => {
        asked.push(`${mac} ${firmware} ${message}`);
        return mac === KNOWN_MAC ? { secureBoot: true } : { secureBoot: false, flavour: "snponly.efi" };
      },
    };
    const pxe = { arch: 7, vendor: "PXEClient:Arch:00007:UNDI:003016" };
    assert.equal(replyOf(handle(request({ mac: KNOWN_MAC, ...pxe }), context)).reply.file, "shimx64.efi");
    assert.equal(replyOf(handle(request({ mac: UNKNOWN_MAC, ...pxe }), context)).reply.file, "snponly.efi");
    const ipxe = replyOf(handle(request({ mac: UNKNOWN_MAC, ...pxe, userClass: "iPXE" }), context));
    assert.equal(ipxe.reply.file, "http://10.0.100.10/boot/ipxe/boot.ipxe");
    const { ack } = dora(context, { mac: UNKNOWN_MAC, ...pxe });
    assert.equal(ack.reply.file, "snponly.efi");
    assert.deepEqual(asked, [
      `${KNOWN_MAC} efi-x64 DISCOVER`,
      `${UNKNOWN_MAC} efi-x64 DISCOVER`,
      `${UNKNOWN_MAC} ipxe DISCOVER`,
      `${UNKNOWN_MAC} efi-x64 DISCOVER`,
      `${UNKNOWN_MAC} efi-x64 REQUEST`,
    ]);
  });

  it("localBoot: http-404: UEFI HTTP boot is told a bootloader URL naming the machine; PXE and iPXE as before", () => {
    const context = makeContext({}, new Set(["undionly.kpxe", "ipxe.efi"]));
    context.boot = {
      ...context.boot,
      chainFor: (mac) => (mac === KNOWN_MAC ? { secureBoot: false, localBoot: "http-404" } : { secureBoot: false }),
    };
    const http = { arch: 16, vendor: "HTTPClient:Arch:00016:UNDI:003001" };
    const own = replyOf(handle(request({ mac: KNOWN_MAC, ...http }), context));
    assert.equal(own.reply.file, `http://10.0.100.10/boot/ipxe/machine/${KNOWN_MAC.replace(/:/g, "-")}/ipxe.efi`);
    assert.equal(own.reply.options.get(Option.VendorClassIdentifier)?.toString("latin1"), "HTTPClient");
    const other = replyOf(handle(request({ mac: UNKNOWN_MAC, ...http }), context));
    assert.equal(other.reply.file, "http://10.0.100.10/boot/ipxe/ipxe.efi");
    const pxe = { arch: 7, vendor: "PXEClient:Arch:00007:UNDI:003016" };
    assert.equal(replyOf(handle(request({ mac: KNOWN_MAC, ...pxe }), context)).reply.file, "ipxe.efi");
    const ipxe = replyOf(handle(request({ mac: KNOWN_MAC, ...pxe, userClass: "iPXE" }), context));
    assert.equal(ipxe.reply.file, "http://10.0.100.10/boot/ipxe/boot.ipxe");
  });
});

describe("intake lane past saturation (issue 12)", () => {
  it("a client mid-DORA goes ahead of new DISCOVERs; a stranger's REQUEST does not", () => {
    const context = makeContext();
    const other = "52:54:00:aa:aa:02";
    assert.equal(intakeLane(request({ mac: UNKNOWN_MAC }), context), "fresh", "a DISCOVER starts an exchange");
    const offer = replyOf(handle(request({ mac: UNKNOWN_MAC }), context));
    const selecting = request({
      mac: UNKNOWN_MAC,
      type: MessageType.Request,
      requested: formatIpv4(offer.reply.yiaddr),
      serverId: "10.0.100.10",
    });
    assert.equal(intakeLane(selecting, context), "inProgress", "the REQUEST for our OFFER");
    assert.equal(intakeLane(request({ mac: UNKNOWN_MAC }), context), "fresh", "its DISCOVER again: new");
    const forged = request({
      mac: other,
      type: MessageType.Request,
      requested: "10.0.100.101",
      serverId: "10.0.100.10",
    });
    assert.equal(intakeLane(forged, context), "fresh", "no offer, lease or reservation for that MAC");
    replyOf(handle(selecting, context));
    const renewing = request({ mac: UNKNOWN_MAC, type: MessageType.Request, ciaddr: formatIpv4(offer.reply.yiaddr) });
    assert.equal(intakeLane(renewing, context), "inProgress", "a renewal of its lease");
    const reserved = request({ mac: KNOWN_MAC, type: MessageType.Request, requested: "10.0.100.50" });
    assert.equal(intakeLane(reserved, context), "inProgress", "a reservation's INIT-REBOOT");
    const release = request({ mac: UNKNOWN_MAC, type: MessageType.Release, ciaddr: formatIpv4(offer.reply.yiaddr) });
    assert.equal(intakeLane(release, context), "inProgress");
  });

  it("proxy mode: every REQUEST continues an exchange a PXE ROM began", () => {
    const context = makeContext({ mode: "proxy" });
    assert.equal(intakeLane(request({ type: MessageType.Request, serverId: "10.0.100.10" }), context), "inProgress");
    assert.equal(intakeLane(request({ type: MessageType.Discover }), context), "fresh");
  });
});
