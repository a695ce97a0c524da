/**
 * Deterministic generators of hostile input for the fuzz campaign: mutated DHCP and TFTP datagrams
 * and malformed HTTP requests. Pure (a seed in, buffers out), so a failing run is replayed exactly
 * with `--seed`. Seeds are real clients' packets: the four captures in testdata/dhcp and the
 * requests iPXE, PXE ROMs and tftp-hpa send.
 */

/** mulberry32: small, fast, and the same sequence on every machine for a given seed. */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** 0 ≤ n < bound. */
  int(bound: number): number {
    return bound <= 1 ? 0 : this.next() % bound;
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

// ---- byte-level mutations shared by the protocols --------------------------------------------

function flipBits(r: Random, b: Buffer): Buffer {
  const out = Buffer.from(b);
  if (out.length === 0) return out;
  for (let n = 1 + r.int(8); n > 0; n--) out[r.int(out.length)]! ^= 1 << r.int(8);
  return out;
}

function overwriteBytes(r: Random, b: Buffer): Buffer {
  const out = Buffer.from(b);
  if (out.length === 0) return out;
  // Interesting values first: the boundaries length and count fields trip on.
  const interesting = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
  for (let n = 1 + r.int(16); n > 0; n--)
    out[r.int(out.length)] = r.chance(0.5) ? r.pick(interesting) : r.next() & 0xff;
  return out;
}

function truncate(r: Random, b: Buffer): Buffer {
  return Buffer.from(b.subarray(0, r.int(b.length)));
}

function extend(r: Random, b: Buffer): Buffer {
  const tail = r.chance(0.2) ? r.bytes(1000 + r.int(9000)) : r.bytes(1 + r.int(300));
  return Buffer.concat([b, tail]);
}

function splice(r: Random, a: Buffer, b: Buffer): Buffer {
  return Buffer.concat([a.subarray(0, r.int(a.length + 1)), b.subarray(r.int(b.length + 1))]);
}

// ---- DHCP ------------------------------------------------------------------------------------

const OPTIONS_START = 240;

/** Where each option's code byte is, read as leniently as a mutated packet needs. */
function optionOffsets(b: Buffer): number[] {
  const out: number[] = [];
  let o = OPTIONS_START;
  while (o < b.length) {
    const code = b[o]!;
    if (code === 0) {
      o++;
      continue;
    }
    if (code === 255 || o + 1 >= b.length) break;
    out.push(o);
    o += 2 + b[o + 1]!;
  }
  return out;
}

/** Option values that decoders and accessors have to survive (RFC 2132, 3004, 3046, 4578). */
function hostileOption(r: Random): Buffer {
  const code = r.pick([
    1,
    3,
    6,
    12,
    43,
    50,
    51,
    52,
    53,
    54,
    55,
    57,
    60,
    61,
    77,
    82,
    93,
    94,
    97,
    119,
    121,
    175,
    r.int(256),
  ]);
  let value: Buffer;
  switch (code) {
    case 52: // overload: file/sname hold options
      value = Buffer.from([r.pick([0, 1, 2, 3, 4, 255])]);
      break;
    case 53: // message type, including unknown types and wrong lengths
      value = r.chance(0.8) ? Buffer.from([r.int(20)]) : r.bytes(r.int(3));
      break;
    case 57: // maximum message size: tiny, huge, odd length
      value = r.chance(0.8) ? Buffer.from([r.next() & 0xff, r.next() & 0xff]) : r.bytes(r.int(4));
      break;
    case 77: {
      // RFC 3004 user class: length-prefixed strings whose lengths may lie
      const parts: number[] = [];
      for (let n = r.int(4); n >= 0; n--) {
        const len = r.int(12);
        parts.push(r.chance(0.3) ? r.int(256) : len, ...r.bytes(len));
      }
      value = Buffer.from(parts.slice(0, 255));
      break;
    }
    case 82: // relay agent information with sub-options that overrun
      value = Buffer.from([1, r.int(40), ...r.bytes(r.int(30))]);
      break;
    case 93: // client architecture: wrong lengths, unknown codes
      value = r.chance(0.7) ? Buffer.from([0, r.pick([0, 6, 7, 9, 10, 11, 15, 16, 255])]) : r.bytes(r.int(5));
      break;
    case 97: // machine UUID: type byte and 16 bytes, or not
      value = r.chance(0.5) ? Buffer.concat([Buffer.from([r.int(3)]), r.bytes(16)]) : r.bytes(r.int(40));
      break;
    case 60:
      value = Buffer.from(
        r.pick([
          "PXEClient",
          "PXEClient:Arch:00007:UNDI:003016",
          "HTTPClient:Arch:00016",
          "PXEClient:Arch:99999",
          "",
          "\0PXE",
        ]),
        "latin1",
      );
      break;
    default:
      value = r.bytes(r.chance(0.1) ? 255 : r.int(24));
  }
  return Buffer.from([code, value.length & 0xff, ...value]);
}

/** Replace the option at a random offset by a hostile one, or lie about a length, or a code. */
function corruptOption(r: Random, b: Buffer): Buffer {
  const offsets = optionOffsets(b);
  if (offsets.length === 0) return insertOption(r, b);
  const at = r.pick(offsets);
  const out = Buffer.from(b);
  switch (r.int(4)) {
    case 0: // the length is a lie: longer than the packet, shorter than the value, zero
      if (at + 1 < out.length) out[at + 1] = r.pick([0, 1, 255, r.int(256), out.length - at]) & 0xff;
      return out;
    case 1:
      out[at] = r.int(256);
      return out;
    case 2: {
      // remove the End option and everything after this option: the packet ends inside a TLV
      return Buffer.from(out.subarray(0, at + 1 + r.int(3)));
    }
    default: {
      const length = at + 1 < b.length ? 2 + b[at + 1]! : 1;
      return Buffer.concat([b.subarray(0, at), hostileOption(r), b.subarray(at + length)]);
    }
  }
}

function insertOption(r: Random, b: Buffer): Buffer {
  const offsets = optionOffsets(b);
  const at = offsets.length && r.chance(0.7) ? r.pick(offsets) : Math.min(OPTIONS_START, b.length);
  const added: Buffer[] = [];
  for (let n = 1 + r.int(r.chance(0.05) ? 60 : 3); n > 0; n--) added.push(hostileOption(r));
  return Buffer.concat([b.subarray(0, at), ...added, b.subarray(at)]);
}

/** The fixed header: op, htype, hlen (up to 255, the chaddr holds 16), addresses, flags. */
function corruptHeader(r: Random, b: Buffer): Buffer {
  const out = Buffer.from(b);
  if (out.length < 44) return out;
  switch (r.int(7)) {
    case 0:
      out[0] = r.pick([0, 1, 2, 3, 255]);
      break;
    case 1:
      out[1] = r.pick([0, 1, 6, 32, 255]);
      out[2] = r.pick([0, 1, 6, 16, 17, 255]);
      break;
    case 2:
      out.writeUInt16BE(r.next() & 0xffff, 10);
      break;
    case 3: // giaddr: a relay from anywhere, or from our own subnet
      out.writeUInt32BE(r.chance(0.5) ? r.next() : (0x0a000000 | (r.next() & 0xffffff)) >>> 0, 24);
      out[3] = r.int(256); // hops
      break;
    case 4: // ciaddr / yiaddr / siaddr
      out.writeUInt32BE(r.next(), 12 + 4 * r.int(3));
      break;
    case 5: // sname and file full of option-like bytes, for overload to find
      r.bytes(64 + 128).copy(out, 44);
      break;
    default:
      if (out.length >= OPTIONS_START) out.writeUInt32BE(r.next(), OPTIONS_START - 4); // the magic cookie
  }
  return out;
}

/** A well-formed request from a new MAC and xid: what a flood of fake clients looks like. */
function freshClient(r: Random, b: Buffer): Buffer {
  const out = Buffer.from(b);
  if (out.length < 44) return out;
  out.writeUInt32BE(r.next(), 4);
  out[28] = 0x02; // locally administered, never a real NIC's
  r.bytes(5).copy(out, 29);
  return out;
}

/** Extra seeds beside the captures: the message types and shapes a DORA does not show. */
export function syntheticDhcpSeeds(capturedRequests: readonly Buffer[]): Buffer[] {
  const seeds: Buffer[] = [];
  for (const base of capturedRequests) {
    if (base.length < 243) continue;
    for (const [type, ciaddr, giaddr] of [
      [8, 0x0a4d04e8, 0], // INFORM
      [4, 0, 0], // DECLINE
      [7, 0x0a4d04e8, 0], // RELEASE
      [3, 0x0a4d04e8, 0], // RENEWING
      [1, 0, 0x0a4d0002], // relayed DISCOVER
      [3, 0, 0], // INIT-REBOOT (option 50 kept)
    ] as const) {
      const out = Buffer.from(base);
      const offsets = optionOffsets(out);
      const typeAt = offsets.find((o) => out[o] === 53);
      if (typeAt !== undefined) out[typeAt + 2] = type;
      out.writeUInt32BE(ciaddr, 12);
      out.writeUInt32BE(giaddr, 24);
      seeds.push(out);
    }
  }
  return seeds;
}

/** One mutated DHCP datagram from the seeds: one to three mutations stacked. */
export function mutateDhcp(r: Random, seeds: readonly Buffer[]): Buffer {
  if (r.chance(0.02)) return r.bytes(r.int(600));
  let b = r.pick(seeds);
  for (let n = 1 + r.int(3); n > 0; n--) {
    switch (r.int(10)) {
      case 0:
        b = flipBits(r, b);
        break;
      case 1:
        b = overwriteBytes(r, b);
        break;
      case 2:
        b = truncate(r, b);
        break;
      case 3:
        b = extend(r, b);
        break;
      case 4:
      case 5:
        b = corruptOption(r, b);
        break;
      case 6:
        b = insertOption(r, b);
        break;
      case 7:
        b = corruptHeader(r, b);
        break;
      case 8:
        b = freshClient(r, b);
        break;
      default:
        b = splice(r, b, r.pick(seeds));
    }
  }
  return b;
}

// ---- TFTP ------------------------------------------------------------------------------------

const TFTP_NAMES = [
  "undionly.kpxe",
  "ipxe.efi",
  "snponly.efi",
  "/undionly.kpxe",
  "pxelinux.cfg/default",
  "../undionly.kpxe",
  "../../../../etc/passwd",
  "/etc/passwd",
  "..",
  ".",
  "",
  "ipxe/../../centra-pxe.db",
  "..\\..\\windows\\win.ini",
  "%2e%2e/%2e%2e/etc/passwd",
  "undionly.kpxe/..",
  "a/./b/../../..",
  "nonexistent",
  "C:\\boot.ini",
  "\u00ff\u00fe",
];

const TFTP_MODES = ["octet", "OCTET", "netascii", "NetAscii", "mail", "binary", "", "octet\u0001", "x".repeat(300)];

const TFTP_OPTIONS = [
  "blksize",
  "BLKSIZE",
  "tsize",
  "timeout",
  "windowsize",
  "multicast",
  "rollover",
  "utimeout",
  "x",
  "",
];
const TFTP_VALUES = [
  "0",
  "1",
  "7",
  "8",
  "511",
  "512",
  "1468",
  "65464",
  "65465",
  "99999999999",
  "-1",
  "abc",
  "",
  "1e3",
  "0x10",
  " 512",
  "00000000008",
];

function tftpString(r: Random, s: string): Buffer {
  // A NUL inside a name, or a missing terminator, now and then.
  if (r.chance(0.05)) return Buffer.from(`${s.slice(0, 3)}\0${s.slice(3)}\0`, "latin1");
  if (r.chance(0.03)) return Buffer.from(s, "latin1");
  return Buffer.from(`${s}\0`, "latin1");
}

const rrq = (...strings: string[]) =>
  Buffer.concat([Buffer.from([0, 1]), ...strings.map((x) => Buffer.from(`${x}\0`, "latin1"))]);

/**
 * Read requests in the shapes real clients send: tftp-hpa (no options), curl (tsize, blksize,
 * timeout), iPXE (blksize 1432, tsize 0), EDK2's PXE (a tsize probe, then blksize and windowsize),
 * a PXE ROM asking for a root-relative name (issue 10: firmware sends `/undionly.kpxe`).
 */
const REAL_CLIENT_REQUESTS = [
  rrq("undionly.kpxe", "octet"),
  rrq("undionly.kpxe", "octet", "tsize", "0", "blksize", "512", "timeout", "6"),
  rrq("undionly.kpxe", "octet", "blksize", "1432", "tsize", "0"),
  rrq("ipxe.efi", "octet", "tsize", "0"),
  rrq("ipxe.efi", "octet", "blksize", "1468", "windowsize", "4"),
  rrq("/undionly.kpxe", "octet", "tsize", "0", "blksize", "1456"),
  rrq("undionly.kpxe", "netascii"),
];

function tftpRequest(r: Random): Buffer {
  if (r.chance(0.3)) return r.pick(REAL_CLIENT_REQUESTS);
  const opcode = r.chance(0.9) ? 1 : 2;
  let name = r.pick(TFTP_NAMES);
  if (r.chance(0.05)) name = "../".repeat(1 + r.int(100)) + name;
  if (r.chance(0.02)) name = "a".repeat(200 + r.int(600));
  const parts = [
    Buffer.from([0, opcode]),
    tftpString(r, name),
    tftpString(r, r.chance(0.6) ? "octet" : r.pick(TFTP_MODES)),
  ];
  for (let n = r.chance(0.05) ? 50 + r.int(100) : r.int(5); n > 0; n--) {
    parts.push(tftpString(r, r.pick(TFTP_OPTIONS)), tftpString(r, r.pick(TFTP_VALUES)));
  }
  if (r.chance(0.05)) parts.push(Buffer.alloc(r.int(100))); // trailing NUL padding some PXE ROMs send
  return Buffer.concat(parts);
}

function tftpOther(r: Random): Buffer {
  const opcode = r.chance(0.8) ? 3 + r.int(4) : r.next() & 0xffff;
  const head = Buffer.from([opcode >> 8, opcode & 0xff, r.next() & 0xff, r.next() & 0xff]);
  switch (opcode) {
    case 3:
      return Buffer.concat([head, r.bytes(r.int(600))]);
    case 5:
      return Buffer.concat([head, Buffer.from(r.chance(0.5) ? "\0" : "no terminator", "latin1")]);
    case 6:
      return Buffer.concat([
        Buffer.from([0, 6]),
        tftpString(r, r.pick(TFTP_OPTIONS)),
        tftpString(r, r.pick(TFTP_VALUES)),
      ]);
    default:
      return head.subarray(0, 2 + r.int(3));
  }
}

/** One TFTP datagram for port 69: requests with hostile names, modes and options, or strays. */
export function mutateTftp(r: Random): Buffer {
  let b = r.chance(0.75) ? tftpRequest(r) : tftpOther(r);
  if (r.chance(0.35)) {
    switch (r.int(4)) {
      case 0:
        b = flipBits(r, b);
        break;
      case 1:
        b = overwriteBytes(r, b);
        break;
      case 2:
        b = truncate(r, b);
        break;
      default:
        b = extend(r, b);
    }
  }
  return b;
}

/** An ACK, ERROR or DATA for a transfer port (TID) that is not ours, or that is ours but off-sequence. */
export function strayForTid(r: Random): Buffer {
  switch (r.int(3)) {
    case 0:
      return Buffer.from([0, 4, r.next() & 0xff, r.next() & 0xff]);
    case 1:
      return Buffer.concat([Buffer.from([0, 5, 0, r.int(9)]), tftpString(r, "go away")]);
    default:
      return Buffer.concat([Buffer.from([0, 3, 0, r.int(3)]), r.bytes(r.int(1500))]);
  }
}

// ---- HTTP ------------------------------------------------------------------------------------

export interface HttpProbe {
  /** The bytes to send; sent in two writes when `split` is set (a slow client). */
  bytes: Buffer;
  split: boolean;
  /** Send a partial request and keep the connection open without finishing it. */
  halfOpen: boolean;
}

const HTTP_PATHS = [
  "/health",
  "/metrics",
  "/boot/ipxe/boot.ipxe",
  "/boot/ipxe/undionly.kpxe",
  "/boot/ipxe/machine.ipxe?mac=52-54-00-12-34-56&platform=efi&buildarch=x86_64",
  `/boot/ipxe/machine.ipxe?mac=%00%00&platform=%ff&buildarch=${"x".repeat(3000)}`,
  "/boot/ipxe/../../etc/passwd",
  "/boot/ipxe/%2e%2e/%2e%2e/etc/passwd",
  "/boot/ipxe/%252e%252e/centra-pxe.db",
  "/boot/ipxe/undionly.kpxe%00.txt",
  "/boot/ipxe/..%2fcentra-pxe.db",
  "/boot/images/nixos/../../../centra-pxe.db",
  "/boot/images/nixos/current/%2e%2e%2f%2e%2e%2f%2e%2e%2fcentra-pxe.db",
  `/boot/images/${"a/".repeat(500)}`,
  "/boot/nixos/latest/bzImage",
  "/boot/ipxe/\\..\\..\\etc\\passwd",
  "//etc/passwd",
  "/api/v1/nodes",
  "/api/v1/events?after=-1",
  "/api/v1/nodes/%00",
  "*",
  "http://evil.example/boot/ipxe/boot.ipxe",
  `/${"%".repeat(100)}`,
  "/\u00ff\u00fe",
];

const HTTP_METHODS = [
  "GET",
  "HEAD",
  "OPTIONS",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "TRACE",
  "CONNECT",
  "FOO",
  "get",
  "G\0ET",
  "PROPFIND",
  "",
];

const RANGES = [
  "bytes=0-0",
  "bytes=abc",
  "bytes=5-1",
  "bytes=-0",
  "bytes=-",
  "bytes=99999999999999999999-",
  "bytes=0-99999999999999999999",
  `bytes=${Array.from({ length: 500 }, (_, i) => `${i}-${i}`).join(",")}`,
  "items=0-1",
  "bytes=0-1,-1",
  "bytes= 1 - 2",
];

function requestLine(r: Random): string {
  const method = r.pick(HTTP_METHODS);
  const path = r.chance(0.02) ? `/${"A".repeat(20_000 + r.int(100_000))}` : r.pick(HTTP_PATHS);
  const version = r.chance(0.9)
    ? "HTTP/1.1"
    : r.pick(["HTTP/1.0", "HTTP/9.9", "HTTP/1", "HTTPS/1.1", "", "HTTP/1.1 extra"]);
  return `${method} ${path} ${version}`.replace(/ $/, "");
}

function headers(r: Random): string[] {
  const out = ["Host: 10.0.0.1"];
  if (r.chance(0.3)) out.push(`Range: ${r.pick(RANGES)}`);
  if (r.chance(0.1)) out.push(`If-None-Match: ${r.pick(['"x"', "*", "W/", `"${"a".repeat(5000)}"`])}`);
  if (r.chance(0.1)) out.push(`Content-Length: ${r.pick(["-1", "abc", "99999999999", "5", "0, 5"])}`);
  if (r.chance(0.1))
    out.push(`Transfer-Encoding: ${r.pick(["chunked", "gzip, chunked", "chunked, identity", "xchunked"])}`);
  if (r.chance(0.05)) for (let n = 200 + r.int(2000); n > 0; n--) out.push(`X-H${n}: ${"v".repeat(r.int(50))}`);
  if (r.chance(0.05)) out.push(`X-Big: ${"b".repeat(8_000 + r.int(100_000))}`);
  if (r.chance(0.05))
    out.push(
      r.pick(["no colon here", ": empty name", "Bad Name: x", "X-Nul: a\0b", "X-Fold: a\r\n folded", "Host: second"]),
    );
  if (r.chance(0.03)) out.push(`Last-Event-ID: ${r.pick(["0", "-1", "x", "99999999999999999999"])}`);
  return out;
}

function chunkedBody(r: Random): string {
  return r.pick([
    "zz\r\nhello\r\n0\r\n\r\n",
    "5\r\nhel",
    "ffffffffffffffff\r\n",
    "-1\r\n\r\n",
    "0\r\nX-Trailer: y\r\n\r\n",
    `1;ext=${"e".repeat(5000)}\r\na\r\n0\r\n\r\n`,
  ]);
}

/** One malformed (or borderline) HTTP request for a fresh connection. */
export function mutateHttp(r: Random): HttpProbe {
  if (r.chance(0.05)) {
    return { bytes: r.bytes(1 + r.int(2000)), split: false, halfOpen: false };
  }
  const lines = [requestLine(r), ...headers(r)];
  const eol = r.chance(0.95) ? "\r\n" : r.pick(["\n", "\r", "\n\r"]);
  let text = lines.join(eol) + eol + eol;
  if (r.chance(0.1)) text += chunkedBody(r);
  if (r.chance(0.05)) text += text; // pipelined twice
  let bytes: Buffer = Buffer.from(text, "latin1");
  if (r.chance(0.1)) bytes = flipBits(r, bytes);
  if (r.chance(0.03)) {
    // Half-open: the head never ends (a slowloris client).
    return { bytes: bytes.subarray(0, Math.max(1, r.int(bytes.length - 4))), split: false, halfOpen: true };
  }
  return { bytes, split: r.chance(0.1), halfOpen: false };
}
