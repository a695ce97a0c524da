import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { describe, it } from "node:test";
import { DecodeError } from "../errors.js";
import { readPcap } from "../files/pcap.js";
import { MessageType, Option } from "./options.js";
import {
  BootOp,
  clientRequest,
  decode,
  encode,
  hardwareAddress,
  machineUuid,
  maxMessageSize,
  messageType,
  peekMessageType,
  userClasses,
  type DhcpPacket,
} from "./packet.js";

const TESTDATA = new URL("../../testdata/dhcp/", import.meta.url);

function packet(options: [number, Buffer][] = [], fields: Partial<DhcpPacket> = {}): DhcpPacket {
  const chaddr = Buffer.alloc(16);
  Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]).copy(chaddr);
  return {
    op: BootOp.Request,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0xdeadbeef,
    secs: 3,
    flags: 0x8000,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr,
    sname: "",
    file: "",
    options: new Map([[Option.MessageType, Buffer.from([MessageType.Discover])], ...options]),
    ...fields,
  };
}

/** decode ∘ encode is the identity on the fields and the option bytes. */
function assertRoundTrip(p: DhcpPacket, maxSize?: number): DhcpPacket {
  const back = decode(encode(p, maxSize));
  for (const key of [
    "op",
    "htype",
    "hlen",
    "hops",
    "xid",
    "secs",
    "flags",
    "ciaddr",
    "yiaddr",
    "siaddr",
    "giaddr",
    "sname",
    "file",
  ] as const)
    assert.equal(back[key], p[key], key);
  assert.deepEqual(back.chaddr, p.chaddr);
  assert.deepEqual(
    new Map([...back.options].sort(([a], [b]) => a - b)),
    new Map([...p.options].filter(([c]) => c !== Option.Overload).sort(([a], [b]) => a - b)),
  );
  return back;
}

describe("DHCP codec", () => {
  it("round-trips fields, options and unknown options", () => {
    assertRoundTrip(
      packet(
        [
          [Option.HostName, Buffer.from("node-1")],
          [224, Buffer.from([1, 2, 3])],
          [Option.ParameterRequestList, Buffer.from([1, 3, 6])],
        ],
        { ciaddr: 0x0a000005, giaddr: 0x0a000101, file: "undionly.kpxe", sname: "srv" },
      ),
    );
  });

  it("pads replies to 300 bytes and ends with End", () => {
    const bytes = encode(packet());
    assert.equal(bytes.length, 300);
    assert.deepEqual([...bytes.subarray(240, 244)], [Option.MessageType, 1, MessageType.Discover, Option.End]);
  });

  it("splits options longer than 255 bytes and joins them again (RFC 3396)", () => {
    const long = Buffer.alloc(600, 7);
    const back = assertRoundTrip(packet([[224, long]]), 1500);
    assert.equal(back.options.get(224)!.length, 600);
  });

  it("overflows into file and sname with option 52 when the client's size is small", () => {
    const p = packet([
      [224, Buffer.alloc(250, 1)],
      [225, Buffer.alloc(60, 2)],
      [226, Buffer.alloc(40, 3)],
    ]);
    const bytes = encode(p, 576);
    assert.ok(bytes.length <= 576 - 28);
    const back = decode(bytes);
    assert.ok(back.options.has(Option.Overload));
    assert.deepEqual(back.options.get(225), Buffer.alloc(60, 2));
    assert.deepEqual(back.options.get(226), Buffer.alloc(40, 3));
  });

  it("honours option 57 and never goes below 576", () => {
    assert.equal(maxMessageSize(packet([[Option.MaxMessageSize, Buffer.from([0x05, 0xdc])]])), 1500);
    assert.equal(maxMessageSize(packet([[Option.MaxMessageSize, Buffer.from([0x01, 0x00])]])), 576);
  });

  it("reads iPXE's bare user class and RFC 3004 framing", () => {
    assert.deepEqual(userClasses(packet([[Option.UserClass, Buffer.from("iPXE")]])), ["iPXE"]);
    assert.deepEqual(
      userClasses(packet([[Option.UserClass, Buffer.from([4, 0x69, 0x50, 0x58, 0x45, 2, 0x61, 0x62])]])),
      ["iPXE", "ab"],
    );
  });

  it("reads option 97 as a UUID and ignores a malformed one", () => {
    const guid = Buffer.concat([Buffer.from([0]), Buffer.from("00112233445566778899aabbccddeeff", "hex")]);
    assert.equal(machineUuid(packet([[Option.ClientMachineIdentifier, guid]])), "00112233-4455-6677-8899-aabbccddeeff");
    assert.equal(machineUuid(packet([[Option.ClientMachineIdentifier, guid.subarray(1)]])), undefined);
  });

  describe("rejects bad input with a DecodeError at the offending offset", () => {
    const good = encode(packet([[Option.HostName, Buffer.from("x")]]));
    const mutate = (f: (b: Buffer) => Buffer) => f(Buffer.from(good));
    const cases: [string, Buffer, RegExp][] = [
      ["truncated", good.subarray(0, 100), /truncated/],
      ["empty", Buffer.alloc(0), /truncated/],
      ["oversized", Buffer.concat([good, Buffer.alloc(9000)]), /oversized/],
      [
        "wrong op",
        mutate((b) => {
          b[0] = 3;
          return b;
        }),
        /op 3/,
      ],
      [
        "bad magic cookie",
        mutate((b) => {
          b.writeUInt32BE(0x01020304, 236);
          return b;
        }),
        /magic cookie/,
      ],
      [
        "hlen > 16",
        mutate((b) => {
          b[2] = 17;
          return b;
        }),
        /hlen 17/,
      ],
      ["option overrun", Buffer.concat([good.subarray(0, 240), Buffer.from([12, 200, 65, 66])]), /overruns/],
      ["option without length", Buffer.concat([good.subarray(0, 240), Buffer.from([12])]), /no length/],
    ];
    for (const [name, bytes, message] of cases) {
      it(name, () => {
        assert.throws(
          () => decode(bytes),
          (e: unknown) => e instanceof DecodeError && message.test(e.message) && e.code === "DECODE",
        );
      });
    }
  });

  it("never throws anything but DecodeError on random mutations", () => {
    const good = encode(
      packet([
        [Option.HostName, Buffer.from("fuzz")],
        [Option.ParameterRequestList, Buffer.from([1, 3, 6, 12, 15])],
      ]),
    );
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(good.subarray(0, 200 + Math.floor(random() * 100)));
      for (let j = 0; j < 4; j++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      try {
        decode(bytes);
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
    }
  });
});

describe("golden packets from real clients (testdata/dhcp/*.pcap)", () => {
  const files = readdirSync(TESTDATA).filter((f) => f.endsWith(".pcap"));
  it("has captures", () => assert.ok(files.length >= 2));
  for (const file of files) {
    it(`${file}: every packet decodes and re-encodes to the same content`, () => {
      const datagrams = readPcap(new URL(file, TESTDATA).pathname);
      assert.ok(datagrams.length > 0);
      for (const d of datagrams) {
        const p = decode(d.payload);
        assert.ok(messageType(p) !== undefined);
        assert.match(hardwareAddress(p), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        assertRoundTrip(p, 1500);
      }
    });
  }

  it("dhclient: DISCOVER asks for host name; REQUEST names server and address", () => {
    const [discover, , request] = readPcap(new URL("dhclient-dora-release.pcap", TESTDATA).pathname).map((d) =>
      decode(d.payload),
    );
    assert.equal(messageType(discover!), MessageType.Discover);
    assert.ok(discover!.options.get(Option.ParameterRequestList)!.includes(Option.HostName));
    assert.equal(messageType(request!), MessageType.Request);
    assert.ok(request!.options.has(Option.ServerIdentifier) && request!.options.has(Option.RequestedIpAddress));
  });
});

describe("peekMessageType (the intake's shedding, issue 12)", () => {
  it("reads option 53 off the wire as decode would, past pads and other options", () => {
    for (const type of [MessageType.Discover, MessageType.Request, MessageType.Release]) {
      const options = new Map<number, Buffer>([
        [Option.HostName, Buffer.from("a-host")],
        [Option.MessageType, Buffer.from([type])],
      ]);
      const wire = encode(clientRequest("52:54:00:00:00:01", 7, options));
      assert.equal(peekMessageType(wire), messageType(decode(wire)));
    }
  });

  it("gives up (the caller decodes) on a truncated packet, a bad cookie, or no option 53", () => {
    const wire = encode(
      clientRequest("52:54:00:00:00:01", 7, new Map([[Option.MessageType, Buffer.from([MessageType.Discover])]])),
    );
    assert.equal(peekMessageType(wire.subarray(0, 200)), undefined);
    const badCookie = Buffer.from(wire);
    badCookie.writeUInt32BE(0, 236);
    assert.equal(peekMessageType(badCookie), undefined);
    const cut = Buffer.concat([wire.subarray(0, 240), Buffer.from([Option.HostName, 40, 1, 2])]);
    assert.equal(peekMessageType(cut), undefined, "an option running past the end");
    assert.equal(peekMessageType(encode(clientRequest("52:54:00:00:00:01", 7, new Map()))), undefined);
  });
});
