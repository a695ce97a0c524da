import { DecodeError } from "../errors.js";

/**
 * The TFTP wire format: RFC 1350 packets plus the RFC 2347 OACK. Pure: bytes in, plain data out.
 * Options are kept as an ordered list of raw name/value strings; interpreting them is `options.ts`.
 */

/** RFC 1350 §5 opcodes, RFC 2347 §3 OACK. Each is a big-endian uint16 at offset 0. */
export enum Opcode {
  ReadRequest = 1,
  WriteRequest = 2,
  Data = 3,
  Ack = 4,
  Error = 5,
  OptionAck = 6,
}

/** RFC 1350 §5 error codes (and RFC 2347 §2 code 8). */
export enum ErrorCode {
  NotDefined = 0,
  FileNotFound = 1,
  AccessViolation = 2,
  DiskFull = 3,
  IllegalOperation = 4,
  UnknownTransferId = 5,
  FileExists = 6,
  NoSuchUser = 7,
  OptionRefused = 8,
}

export type TransferMode = "octet" | "netascii" | "mail";

export interface TftpOption {
  /** As sent; RFC 2347 §2 makes option names case-insensitive, so compare lower-cased. */
  name: string;
  value: string;
}

export interface RequestPacket {
  opcode: Opcode.ReadRequest | Opcode.WriteRequest;
  filename: string;
  /** Lower-cased; RFC 1350 §5 modes are case-insensitive. */
  mode: TransferMode;
  options: TftpOption[];
}

export interface DataPacket {
  opcode: Opcode.Data;
  block: number;
  data: Buffer;
}

export interface AckPacket {
  opcode: Opcode.Ack;
  block: number;
}

export interface ErrorPacket {
  opcode: Opcode.Error;
  code: number;
  message: string;
}

export interface OptionAckPacket {
  opcode: Opcode.OptionAck;
  options: TftpOption[];
}

export type Packet = RequestPacket | DataPacket | AckPacket | ErrorPacket | OptionAckPacket;

/** Request strings are NUL-terminated netascii; latin1 keeps every byte as one char so nothing is lost. */
function readString(buf: Buffer, offset: number, what: string): [string, number] {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new DecodeError(`${what} is not NUL-terminated`, offset);
  return [buf.toString("latin1", offset, end), end + 1];
}

/** Decode one datagram. Throws DecodeError (with the byte offset) on anything malformed. */
export function decodePacket(buf: Buffer): Packet {
  if (buf.length < 2) throw new DecodeError("datagram shorter than an opcode", 0);
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.ReadRequest:
    case Opcode.WriteRequest: {
      const [filename, afterName] = readString(buf, 2, "filename");
      const [rawMode, afterMode] = readString(buf, afterName, "mode");
      const mode = rawMode.toLowerCase();
      if (mode !== "octet" && mode !== "netascii" && mode !== "mail")
        throw new DecodeError(`unknown transfer mode ${JSON.stringify(rawMode)}`, afterName);
      const options: TftpOption[] = [];
      let offset = afterMode;
      // RFC 2347 §2: name/value pairs follow the mode. Some PXE ROMs pad the request with trailing
      // NULs, so a run of empty strings at the end is tolerated rather than rejected.
      while (offset < buf.length) {
        if (buf[offset] === 0) {
          offset++;
          continue;
        }
        const [name, afterOptName] = readString(buf, offset, "option name");
        const [value, afterValue] = readString(buf, afterOptName, `value of option ${name}`);
        options.push({ name, value });
        offset = afterValue;
      }
      return { opcode, filename, mode, options };
    }
    case Opcode.Data:
      if (buf.length < 4) throw new DecodeError("DATA shorter than its header", buf.length);
      return { opcode, block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case Opcode.Ack:
      if (buf.length < 4) throw new DecodeError("ACK shorter than its block number", buf.length);
      return { opcode, block: buf.readUInt16BE(2) };
    case Opcode.Error: {
      if (buf.length < 4) throw new DecodeError("ERROR shorter than its code", buf.length);
      // Some clients omit the terminating NUL of the message; read to the end then.
      const end = buf.indexOf(0, 4);
      return { opcode, code: buf.readUInt16BE(2), message: buf.toString("latin1", 4, end < 0 ? buf.length : end) };
    }
    case Opcode.OptionAck: {
      const options: TftpOption[] = [];
      let offset = 2;
      while (offset < buf.length) {
        const [name, afterName] = readString(buf, offset, "option name");
        const [value, afterValue] = readString(buf, afterName, `value of option ${name}`);
        options.push({ name, value });
        offset = afterValue;
      }
      return { opcode, options };
    }
    default:
      throw new DecodeError(`unknown opcode ${opcode}`, 0);
  }
}

function stringsLength(strings: string[]): number {
  let n = 0;
  for (const s of strings) n += Buffer.byteLength(s, "latin1") + 1;
  return n;
}

function writeStrings(buf: Buffer, offset: number, strings: string[]): number {
  for (const s of strings) {
    offset += buf.write(s, offset, "latin1");
    buf[offset++] = 0;
  }
  return offset;
}

/** The encoded size of a packet, without encoding it. */
export function encodingLength(p: Packet): number {
  switch (p.opcode) {
    case Opcode.ReadRequest:
    case Opcode.WriteRequest:
      return 2 + stringsLength([p.filename, p.mode, ...p.options.flatMap((o) => [o.name, o.value])]);
    case Opcode.Data:
      return 4 + p.data.length;
    case Opcode.Ack:
      return 4;
    case Opcode.Error:
      return 4 + stringsLength([p.message]);
    case Opcode.OptionAck:
      return 2 + stringsLength(p.options.flatMap((o) => [o.name, o.value]));
  }
}

export function encodePacket(p: Packet): Buffer {
  const buf = Buffer.alloc(encodingLength(p));
  buf.writeUInt16BE(p.opcode, 0);
  switch (p.opcode) {
    case Opcode.ReadRequest:
    case Opcode.WriteRequest:
      writeStrings(buf, 2, [p.filename, p.mode, ...p.options.flatMap((o) => [o.name, o.value])]);
      break;
    case Opcode.Data:
      buf.writeUInt16BE(p.block, 2);
      p.data.copy(buf, 4);
      break;
    case Opcode.Ack:
      buf.writeUInt16BE(p.block, 2);
      break;
    case Opcode.Error:
      buf.writeUInt16BE(p.code, 2);
      writeStrings(buf, 4, [p.message]);
      break;
    case Opcode.OptionAck:
      writeStrings(
        buf,
        2,
        p.options.flatMap((o) => [o.name, o.value]),
      );
      break;
  }
  return buf;
}

/**
 * The 4-byte DATA header alone, written into `into` at `offset`. The server sends header and payload
 * as two iovecs of one datagram, so a cached file's bytes go out without being copied per packet.
 */
export function writeDataHeader(into: Buffer, offset: number, block: number): void {
  into[offset] = 0;
  into[offset + 1] = Opcode.Data;
  into[offset + 2] = (block >>> 8) & 0xff;
  into[offset + 3] = block & 0xff;
}
