import { test } from "node:test";
import assert from "node:assert/strict";
import { DecodeError } from "../errors.js";
import {
  decodePacket,
  encodePacket,
  encodingLength,
  ErrorCode,
  Opcode,
  writeDataHeader,
  type Packet,
} from "./packet.js";
import { toNetascii } from "./netascii.js";

function roundTrip(packet: Packet): void {
  const bytes = encodePacket(packet);
  assert.equal(bytes.length, encodingLength(packet));
  assert.deepEqual(decodePacket(bytes), packet);
}

test("every packet type survives encode → decode", () => {
  roundTrip({ opcode: Opcode.ReadRequest, filename: "undionly.kpxe", mode: "octet", options: [] });
  roundTrip({
    opcode: Opcode.ReadRequest,
    filename: "ipxe.efi",
    mode: "octet",
    options: [
      { name: "blksize", value: "1468" },
      { name: "tsize", value: "0" },
    ],
  });
  roundTrip({ opcode: Opcode.WriteRequest, filename: "x", mode: "netascii", options: [] });
  roundTrip({ opcode: Opcode.Data, block: 65535, data: Buffer.from("hello") });
  roundTrip({ opcode: Opcode.Data, block: 0, data: Buffer.alloc(0) });
  roundTrip({ opcode: Opcode.Ack, block: 513 });
  roundTrip({ opcode: Opcode.Error, code: ErrorCode.AccessViolation, message: "access violation" });
  roundTrip({ opcode: Opcode.OptionAck, options: [{ name: "blksize", value: "1432" }] });
});

test("a read request as tftp-hpa sends it decodes, mode lower-cased", () => {
  const bytes = Buffer.from("\x00\x01pxelinux.0\x00OCTET\x00BlkSize\x001468\x00", "latin1");
  assert.deepEqual(decodePacket(bytes), {
    opcode: Opcode.ReadRequest,
    filename: "pxelinux.0",
    mode: "octet",
    options: [{ name: "BlkSize", value: "1468" }],
  });
});

test("trailing NUL padding after a request is tolerated", () => {
  const bytes = Buffer.from("\x00\x01a\x00octet\x00\x00\x00\x00", "latin1");
  assert.deepEqual(decodePacket(bytes), { opcode: Opcode.ReadRequest, filename: "a", mode: "octet", options: [] });
});

test("malformed datagrams throw DecodeError with the offset where decoding stopped", () => {
  const cases: [string, number][] = [
    ["", 0],
    ["\x00", 0],
    ["\x00\x09abc", 0],
    ["\x00\x01file", 2],
    ["\x00\x01file\x00oct", 7],
    ["\x00\x01file\x00binary\x00", 7],
    ["\x00\x01f\x00octet\x00blksize\x00512", 18],
    ["\x00\x03\x00", 3],
    ["\x00\x04\x00", 3],
  ];
  for (const [raw, offset] of cases) {
    assert.throws(
      () => decodePacket(Buffer.from(raw, "latin1")),
      (err: unknown) => err instanceof DecodeError && err.offset === offset,
      JSON.stringify(raw),
    );
  }
});

test("an ERROR without its terminating NUL still decodes", () => {
  assert.deepEqual(decodePacket(Buffer.from("\x00\x05\x00\x08refused", "latin1")), {
    opcode: Opcode.Error,
    code: 8,
    message: "refused",
  });
});

test("writeDataHeader writes opcode 3 and the big-endian block", () => {
  const b = Buffer.alloc(6, 0xff);
  writeDataHeader(b, 1, 0x1234);
  assert.deepEqual([...b], [0xff, 0, 3, 0x12, 0x34, 0xff]);
});

test("netascii: LF becomes CR LF and a bare CR becomes CR NUL", () => {
  assert.deepEqual(toNetascii(Buffer.from("a\nb\rc")), Buffer.from("a\r\nb\r\0c", "latin1"));
  const plain = Buffer.from("no line ends");
  assert.equal(toNetascii(plain), plain);
});

test("frameBlocks lays out DATA datagrams that decode back to the file", async () => {
  const { frameBlocks } = await import("./file-source.js");
  for (const size of [0, 7, 8, 9, 100]) {
    const file = Buffer.from(Array.from({ length: size }, (_, i) => i & 0xff));
    const framed = frameBlocks(file, 8);
    const blocks = Math.floor(size / 8) + 1;
    const parts: Buffer[] = [];
    for (let n = 1; n <= blocks; n++) {
      const start = (n - 1) * 12;
      const end = n < blocks ? start + 12 : framed.length;
      const p = decodePacket(framed.subarray(start, end));
      assert.ok(p.opcode === Opcode.Data && p.block === n);
      parts.push(p.data);
    }
    assert.deepEqual(Buffer.concat(parts), file);
  }
});
