import { readFileSync } from "node:fs";

/**
 * A minimal reader for the classic pcap files tcpdump writes (Ethernet, IPv4, UDP), enough to
 * turn captures of real clients into golden packets. Little- and big-endian files, µs or ns stamps.
 */
export interface CapturedDatagram {
  source: string;
  destination: string;
  sourcePort: number;
  destinationPort: number;
  payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;

export function readPcap(file: string): CapturedDatagram[] {
  const data = readFileSync(file);
  const magic = data.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!little && data.readUInt32BE(0) !== 0xa1b2c3d4 && data.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number) => (little ? data.readUInt32LE(o) : data.readUInt32BE(o));
  if (u32(20) !== LINKTYPE_ETHERNET) throw new Error(`${file}: link type ${u32(20)}, only Ethernet is read`);
  const out: CapturedDatagram[] = [];
  let offset = 24;
  while (offset + 16 <= data.length) {
    const captured = u32(offset + 8);
    const frame = data.subarray(offset + 16, offset + 16 + captured);
    offset += 16 + captured;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    const headerLength = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== 17) continue;
    const totalLength = ip.readUInt16BE(2);
    const udp = ip.subarray(headerLength, totalLength);
    const dotted = (o: number) => [ip[o], ip[o + 1], ip[o + 2], ip[o + 3]].join(".");
    out.push({
      source: dotted(12),
      destination: dotted(16),
      sourcePort: udp.readUInt16BE(0),
      destinationPort: udp.readUInt16BE(2),
      payload: Buffer.from(udp.subarray(8, udp.readUInt16BE(4))),
    });
  }
  return out;
}
