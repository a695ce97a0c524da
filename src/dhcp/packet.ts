import { DecodeError } from "../errors.js";
import { type MessageType, Option } from "./options.js";

/**
 * The DHCPv4 message (RFC 2131 §2, fig. 1) as plain data. Options stay raw bytes keyed by code, in
 * the order they came; `decode` merges split options (RFC 3396) and follows option overload into
 * `sname`/`file` (RFC 2132 §9.3). Addresses are unsigned 32-bit numbers.
 */
export interface DhcpPacket {
  /** 1 BOOTREQUEST, 2 BOOTREPLY. */
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** 16 bytes; the hardware address is its first `hlen`. */
  chaddr: Buffer;
  /** Server host name; empty when overloaded with options. */
  sname: string;
  /** Boot file name (or, from our server, an HTTP URL for UEFI HTTP boot and iPXE). */
  file: string;
  options: Map<number, Buffer>;
}

export const BootOp = { Request: 1, Reply: 2 } as const;
/** RFC 2131 §2: the leftmost bit of `flags`. */
export const BROADCAST_FLAG = 0x8000;
export const MAGIC_COOKIE = 0x63825363;
const FIXED_LENGTH = 236;
/** RFC 2131 §2: every DHCP participant must accept 576-byte IP datagrams (548 bytes of DHCP). */
export const MIN_MAX_MESSAGE_SIZE = 576;
const IP_UDP_HEADERS = 28;
/** RFC 2131 §2: a BOOTP relic, many clients drop replies whose options field is shorter. */
const MIN_PACKET_LENGTH = 300;
/** A request longer than an Ethernet jumbo frame is not a real client. */
export const MAX_REQUEST_LENGTH = 9000;

/**
 * A client's request as firmware sends it before it holds an address: broadcast flag set (RFC 2131
 * §4.1), `chaddr` from the hardware address (`aa:bb:…` or its bytes; `hlen` as many bytes as given,
 * 1 to 16), the options as given.
 * What `doctor`, the test clients and the storm benchmark send.
 */
export function clientRequest(
  mac: string | Buffer,
  xid: number,
  options: Map<number, Buffer>,
  addresses: { ciaddr?: number; giaddr?: number } = {},
): DhcpPacket {
  const bytes = typeof mac === "string" ? Buffer.from(mac.split(":").map((h) => parseInt(h, 16))) : mac;
  const chaddr = Buffer.alloc(16);
  bytes.copy(chaddr);
  return {
    op: BootOp.Request,
    htype: 1,
    hlen: bytes.length,
    hops: 0,
    xid,
    secs: 0,
    flags: BROADCAST_FLAG,
    ciaddr: addresses.ciaddr ?? 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: addresses.giaddr ?? 0,
    chaddr,
    sname: "",
    file: "",
    options,
  };
}

function cString(buffer: Buffer, start: number, length: number): string {
  const end = buffer.indexOf(0, start);
  return buffer.toString("latin1", start, end === -1 || end > start + length ? start + length : end);
}

/** Parse options from `[start, end)` into `into`, concatenating repeats (RFC 3396). Returns the overload value. */
function decodeOptions(buffer: Buffer, start: number, end: number, into: Map<number, Buffer>): number {
  let offset = start;
  let overload = 0;
  while (offset < end) {
    const code = buffer[offset]!;
    if (code === Option.End) return overload;
    if (code === Option.Pad) {
      offset++;
      continue;
    }
    if (offset + 1 >= end) throw new DecodeError(`option ${code} has no length byte`, offset);
    const length = buffer[offset + 1]!;
    const valueStart = offset + 2;
    if (valueStart + length > end)
      throw new DecodeError(`option ${code} of length ${length} overruns the packet`, offset);
    const value = buffer.subarray(valueStart, valueStart + length);
    const previous = into.get(code);
    into.set(code, previous ? Buffer.concat([previous, value]) : value);
    if (code === Option.Overload && length === 1) overload = value[0]!;
    offset = valueStart + length;
  }
  // RFC 2131 §4.1 requires an End option, but firmware that pads to the end without one exists;
  // what was read is well-formed, so keep it.
  return overload;
}

/**
 * The message type (option 53) read straight off the wire, without decoding: what lets the edge
 * shed a DISCOVER past saturation (intake.ts) for a fraction of a decode, which allocates a Buffer
 * per option. Undefined when the options field does not carry it (malformed, or RFC 2132 §9.3
 * overload into sname/file): the caller decodes then, as for any other packet.
 */
export function peekMessageType(buffer: Buffer): number | undefined {
  if (buffer.length < FIXED_LENGTH + 4 || buffer.readUInt32BE(FIXED_LENGTH) !== MAGIC_COOKIE) return undefined;
  let at = FIXED_LENGTH + 4;
  while (at < buffer.length) {
    const code = buffer[at]!;
    if (code === Option.Pad) {
      at++;
      continue;
    }
    if (code === Option.End || at + 1 >= buffer.length) return undefined;
    const length = buffer[at + 1]!;
    if (code === Option.MessageType) return length === 1 && at + 2 < buffer.length ? buffer[at + 2] : undefined;
    at += 2 + length;
  }
  return undefined;
}

/** Decode a datagram; throws `DecodeError` (with the offset) on anything malformed. */
export function decode(buffer: Buffer): DhcpPacket {
  if (buffer.length < FIXED_LENGTH + 4)
    throw new DecodeError(`truncated: ${buffer.length} bytes, a DHCP message has at least 240`, buffer.length);
  if (buffer.length > MAX_REQUEST_LENGTH)
    throw new DecodeError(`oversized: ${buffer.length} bytes`, MAX_REQUEST_LENGTH);
  const op = buffer[0]!;
  if (op !== BootOp.Request && op !== BootOp.Reply)
    throw new DecodeError(`op ${op} is neither BOOTREQUEST nor BOOTREPLY`, 0);
  const hlen = buffer[2]!;
  if (hlen > 16) throw new DecodeError(`hlen ${hlen} exceeds the 16-byte chaddr`, 2);
  if (buffer.readUInt32BE(FIXED_LENGTH) !== MAGIC_COOKIE)
    throw new DecodeError("bad magic cookie (plain BOOTP is not served)", FIXED_LENGTH);
  const options = new Map<number, Buffer>();
  const overload = decodeOptions(buffer, FIXED_LENGTH + 4, buffer.length, options);
  // RFC 2132 §9.3: the `file` field is read before `sname`.
  if (overload & 1) decodeOptions(buffer, 108, 236, options);
  if (overload & 2) decodeOptions(buffer, 44, 108, options);
  return {
    op,
    htype: buffer[1]!,
    hlen,
    hops: buffer[3]!,
    xid: buffer.readUInt32BE(4),
    secs: buffer.readUInt16BE(8),
    flags: buffer.readUInt16BE(10),
    ciaddr: buffer.readUInt32BE(12),
    yiaddr: buffer.readUInt32BE(16),
    siaddr: buffer.readUInt32BE(20),
    giaddr: buffer.readUInt32BE(24),
    chaddr: Buffer.from(buffer.subarray(28, 44)),
    sname: overload & 2 ? "" : cString(buffer, 44, 64),
    file: overload & 1 ? "" : cString(buffer, 108, 128),
    options,
  };
}

/** Bytes an option list takes on the wire, long values split in 255-byte pieces (RFC 3396). */
function optionLength(value: Buffer): number {
  return value.length === 0 ? 2 : value.length + 2 * Math.ceil(value.length / 255);
}

function writeOption(out: Buffer, offset: number, code: number, value: Buffer): number {
  let written = 0;
  do {
    const piece = value.subarray(written, written + 255);
    out[offset++] = code;
    out[offset++] = piece.length;
    piece.copy(out, offset);
    offset += piece.length;
    written += piece.length;
  } while (written < value.length);
  return offset;
}

/**
 * Encode a packet into at most `maxSize` bytes of IP datagram (the client's option 57, at least
 * 576). Options that do not fit the options field go into `file`, then `sname`, with option 52
 * (RFC 2132 §9.3); what still does not fit is left out, lowest priority (last in the map) first.
 */
/** Options `encode` writes itself or never: Pad, End and Overload in a packet's map are ignored. */
function isEncodedOption(code: number): boolean {
  return code !== Option.Pad && code !== Option.End && code !== Option.Overload;
}

export function encode(packet: DhcpPacket, maxSize: number = MIN_MAX_MESSAGE_SIZE): Buffer {
  const limit = Math.max(MIN_MAX_MESSAGE_SIZE, maxSize) - IP_UDP_HEADERS;
  // Keep room for option 52 itself in case something overflows.
  const mainRoom = limit - FIXED_LENGTH - 4 - 1 - 3; // cookie, End, option 52

  let used = 0;
  for (const [code, value] of packet.options) if (isEncodedOption(code)) used += optionLength(value);
  // Nearly every reply fits the options field: then every option goes there, in order, and the
  // split below (which builds three lists per reply) is skipped.
  const fitsMain = used <= mainRoom;
  const main: [number, Buffer][] | Map<number, Buffer> = fitsMain ? packet.options : [];
  const inFile: [number, Buffer][] = [];
  const inSname: [number, Buffer][] = [];
  if (!fitsMain) {
    used = 0;
    let fileUsed = 0;
    let snameUsed = 0;
    const fileFree = packet.file.length === 0;
    const snameFree = packet.sname.length === 0;
    for (const entry of packet.options) {
      if (!isEncodedOption(entry[0])) continue;
      const length = optionLength(entry[1]);
      if (used + length <= mainRoom) {
        (main as [number, Buffer][]).push(entry);
        used += length;
      } else if (fileFree && fileUsed + length <= 127) {
        inFile.push(entry);
        fileUsed += length;
      } else if (snameFree && snameUsed + length <= 63) {
        inSname.push(entry);
        snameUsed += length;
      }
    }
  }
  const overload = (inFile.length ? 1 : 0) | (inSname.length ? 2 : 0);
  const total = Math.max(MIN_PACKET_LENGTH, FIXED_LENGTH + 4 + used + (overload ? 3 : 0) + 1);
  const out = Buffer.alloc(total);
  out[0] = packet.op;
  out[1] = packet.htype;
  out[2] = packet.hlen;
  out[3] = packet.hops;
  out.writeUInt32BE(packet.xid >>> 0, 4);
  out.writeUInt16BE(packet.secs, 8);
  out.writeUInt16BE(packet.flags, 10);
  out.writeUInt32BE(packet.ciaddr >>> 0, 12);
  out.writeUInt32BE(packet.yiaddr >>> 0, 16);
  out.writeUInt32BE(packet.siaddr >>> 0, 20);
  out.writeUInt32BE(packet.giaddr >>> 0, 24);
  packet.chaddr.copy(out, 28, 0, 16);
  if (overload & 2) {
    let o = 44;
    for (const [code, value] of inSname) o = writeOption(out, o, code, value);
    out[o] = Option.End;
  } else {
    out.write(packet.sname.slice(0, 63), 44, "latin1");
  }
  if (overload & 1) {
    let o = 108;
    for (const [code, value] of inFile) o = writeOption(out, o, code, value);
    out[o] = Option.End;
  } else {
    out.write(packet.file.slice(0, 127), 108, "latin1");
  }
  out.writeUInt32BE(MAGIC_COOKIE, FIXED_LENGTH);
  let offset = FIXED_LENGTH + 4;
  // Message type first: some PXE ROMs only look for it at the start of the options.
  const type = packet.options.get(Option.MessageType);
  if (type) offset = writeOption(out, offset, Option.MessageType, type);
  if (overload) offset = writeOption(out, offset, Option.Overload, Buffer.from([overload]));
  for (const [code, value] of main)
    if (code !== Option.MessageType && isEncodedOption(code)) offset = writeOption(out, offset, code, value);
  out[offset] = Option.End;
  return out;
}

// ---- typed accessors -------------------------------------------------------------------------

export function messageType(packet: DhcpPacket): MessageType | undefined {
  const value = packet.options.get(Option.MessageType);
  return value?.length === 1 ? (value[0] as MessageType) : undefined;
}

export function optionAddress(packet: DhcpPacket, code: number): number | undefined {
  const value = packet.options.get(code);
  return value?.length === 4 ? value.readUInt32BE(0) : undefined;
}

export function optionString(packet: DhcpPacket, code: number): string | undefined {
  const value = packet.options.get(code);
  if (!value || value.length === 0) return undefined;
  // Some clients count a trailing NUL in the length (RFC 2132 §2 says they should not).
  const end = value.indexOf(0);
  return value.toString("latin1", 0, end === -1 ? value.length : end);
}

export function optionUint16(packet: DhcpPacket, code: number): number | undefined {
  const value = packet.options.get(code);
  return value && value.length >= 2 ? value.readUInt16BE(0) : undefined;
}

/** The client's `maxSize` for our reply (option 57), never below the 576 everyone must accept. */
export function maxMessageSize(packet: DhcpPacket): number {
  const size = optionUint16(packet, Option.MaxMessageSize);
  return size === undefined ? MIN_MAX_MESSAGE_SIZE : Math.max(MIN_MAX_MESSAGE_SIZE, size);
}

/**
 * Option 93. RFC 4578 allows a list; firmware sends one code, and the first one is the one it
 * boots with.
 */
export function clientArchitecture(packet: DhcpPacket): number | undefined {
  return optionUint16(packet, Option.ClientSystemArchitecture);
}

/** Option 77 as a list of class names: RFC 3004 length-prefixed items, or iPXE's bare string. */
export function userClasses(packet: DhcpPacket): string[] {
  const value = packet.options.get(Option.UserClass);
  if (!value || value.length === 0) return [];
  const items: string[] = [];
  let offset = 0;
  while (offset < value.length) {
    const length = value[offset]!;
    if (length === 0 || offset + 1 + length > value.length) {
      // Not RFC 3004 framing: iPXE (and dhclient's `send user-class`) put the name in directly.
      return [value.toString("latin1").replace(/\0+$/, "")];
    }
    items.push(value.toString("latin1", offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  return items;
}

/** Option 97 as a lower-case RFC 4122 string; undefined when absent or not type 0 + 16 bytes. */
export function machineUuid(packet: DhcpPacket): string | undefined {
  const value = packet.options.get(Option.ClientMachineIdentifier);
  if (value?.length !== 17 || value[0] !== 0) return undefined;
  const hex = value.toString("hex", 1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

/** The client's hardware address as `aa:bb:…`, `hlen` bytes of `chaddr`. */
export function hardwareAddress(packet: DhcpPacket): string {
  // Asked several times per request (the intake, the handler, the timeline): a table, not toString.
  let text = "";
  for (let i = 0; i < packet.hlen; i++)
    text += i === 0 ? HEX_BYTE[packet.chaddr[i]!] : `:${HEX_BYTE[packet.chaddr[i]!]}`;
  return text;
}

export function addressBytes(address: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(address >>> 0, 0);
  return out;
}

export function addressListBytes(addresses: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(4 * addresses.length);
  for (const [i, a] of addresses.entries()) out.writeUInt32BE(a >>> 0, 4 * i);
  return out;
}

export function uint32Bytes(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}
