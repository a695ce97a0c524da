/**
 * The storm's machines (bench/storm/storm.ts runs this in the client namespace): each does what PXE
 * firmware and then iPXE do, with its own MAC in chaddr (one UDP socket for all, as perfdhcp does):
 *   DORA with option 93 (BIOS) → TFTP of the bootloader named in `file` from siaddr →
 *   DORA again with option 77 "iPXE" → HTTP of the entry script named in `file` → the script it
 *   chains to (ours: the machine script; the seed's boot.ipxe has none) → kernel → initrd.
 * `client.ts PLAN.json` prints one JSON line: per machine, ok or the step that failed, and the time
 * from its first DISCOVER to its last initrd byte.
 */
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { formatIpv4 } from "../../src/config/primitives.js";
import { MessageType, Option } from "../../src/dhcp/options.js";
import {
  BootOp,
  type DhcpPacket,
  addressBytes,
  clientRequest,
  decode,
  encode,
  hardwareAddress,
  messageType,
  optionAddress,
} from "../../src/dhcp/packet.js";
import { decodePacket, encodePacket, Opcode } from "../../src/tftp/packet.js";

export interface StormPlan {
  macs: string[];
  /** Arrivals spread evenly over this many ms. */
  windowMs: number;
  /** A machine that has not finished by then failed (ms after its first DISCOVER). */
  deadlineMs: number;
}

export interface MachineResult {
  mac: string;
  ok: boolean;
  /** First DISCOVER → last initrd byte. */
  ms: number;
  failedAt?: string;
  bytes: number;
  /** ms spent in each step (DHCP, TFTP, each HTTP fetch), to say where a slow boot's time went. */
  steps?: Record<string, number>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Replies by xid: each DORA waits for its own. */
const waiting = new Map<number, (reply: DhcpPacket) => void>();
// One socket hears every machine's replies (broadcast, as the PXE flag asks): each real machine has
// a receive queue of its own, so this one must hold what a thousand would, or a late turn of the
// simulator's loop drops OFFERs and ACKs in its own kernel buffer (seen as UDP RcvbufErrors in the
// client namespace; the default 208 KiB dropped hundreds on a loaded box). Capped by
// net.core.rmem_max.
const socket = dgram.createSocket({ type: "udp4", reuseAddr: true, recvBufferSize: 8 * 1024 * 1024 });
socket.on("message", (data) => {
  try {
    const reply = decode(data);
    if (reply.op === BootOp.Reply) waiting.get(reply.xid)?.(reply);
  } catch {
    /* not DHCP */
  }
});

let nextXid = (Math.random() * 0x7fffffff) >>> 0;

function request(mac: string, xid: number, type: number, ipxe: boolean, extra: [number, Buffer][]): Buffer {
  const options = new Map<number, Buffer>([
    [Option.MessageType, Buffer.from([type])],
    // RFC 4578 §2.1: x86 BIOS; the vendor class as PXE ROMs send it.
    [93, Buffer.from([0, 0])],
    [Option.VendorClassIdentifier, Buffer.from("PXEClient:Arch:00000:UNDI:002001", "latin1")],
    [Option.ParameterRequestList, Buffer.from([1, 3, 6, 43, 54, 60, 66, 67])],
    ...extra,
  ]);
  // iPXE's user class (RFC 3004 as iPXE sends it: one length-prefixed string would be RFC form; iPXE
  // sends the bare text, and both ISC and we match that).
  if (ipxe) options.set(77, Buffer.from("iPXE", "latin1"));
  return encode(clientRequest(mac, xid, options));
}

/** One exchange: send, retransmit as PXE ROMs do (4 s, 8 s, 16 s, RFC 2131 §4.1), until `accept`. */
async function exchange(
  mac: string,
  xid: number,
  build: () => Buffer,
  accept: (reply: DhcpPacket) => boolean,
): Promise<DhcpPacket | undefined> {
  const packet = build();
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let tries = 0;
    const done = (reply: DhcpPacket | undefined) => {
      clearTimeout(timer);
      waiting.delete(xid);
      resolve(reply);
    };
    waiting.set(xid, (reply) => {
      if (hardwareAddress(reply) === mac && accept(reply)) done(reply);
    });
    const send = () => {
      if (tries === 4) return done(undefined);
      socket.send(packet, 67, "255.255.255.255");
      timer = setTimeout(send, 4000 * 2 ** tries++);
    };
    send();
  });
}

async function dora(mac: string, ipxe: boolean): Promise<DhcpPacket | undefined> {
  const xid = nextXid++ >>> 0;
  const offer = await exchange(
    mac,
    xid,
    () => request(mac, xid, MessageType.Discover, ipxe, []),
    (r) => messageType(r) === MessageType.Offer,
  );
  if (!offer) return undefined;
  const serverId = optionAddress(offer, Option.ServerIdentifier) ?? offer.siaddr;
  const ack = await exchange(
    mac,
    xid,
    () =>
      request(mac, xid, MessageType.Request, ipxe, [
        [Option.RequestedIpAddress, addressBytes(offer.yiaddr)],
        [Option.ServerIdentifier, addressBytes(serverId)],
      ]),
    (r) => messageType(r) === MessageType.Ack || messageType(r) === MessageType.Nak,
  );
  if (ack && messageType(ack) === MessageType.Nak) {
    // The server's reason (option 56) says which rule refused the address it had just offered.
    throw new Error(`NAK from ${formatIpv4(serverId)}: ${ack.options.get(Option.Message)?.toString("latin1") ?? "?"}`);
  }
  return ack && messageType(ack) === MessageType.Ack ? { ...ack, siaddr: ack.siaddr || offer.siaddr } : undefined;
}

/** TFTP read (RFC 1350) with blksize 1468 (RFC 2348), lockstep as PXE ROMs do; returns the bytes read. */
function tftpGet(server: string, filename: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    let bytes = 0;
    let lastBlock = 0;
    let peerPort = 69;
    let locked = false;
    let blksize = 512;
    let timer: NodeJS.Timeout | undefined;
    let tries = 0;
    let last: Buffer = encodePacket({
      opcode: Opcode.ReadRequest,
      filename,
      mode: "octet",
      options: [
        { name: "blksize", value: "1468" },
        { name: "tsize", value: "0" },
      ],
    });
    const finish = (error?: Error) => {
      clearTimeout(timer);
      s.close();
      if (error) reject(error);
      else resolve(bytes);
    };
    const send = () => {
      clearTimeout(timer);
      s.send(last, peerPort, server);
      timer = setTimeout(() => (++tries > 5 ? finish(new Error("tftp timeout")) : send()), 1000);
    };
    s.on("message", (data, rinfo) => {
      let packet: ReturnType<typeof decodePacket>;
      try {
        packet = decodePacket(data);
      } catch {
        return;
      }
      // RFC 1350 §4: the first answer fixes the server's transfer port (TID); another port's packets
      // (a second transfer started by a retransmitted RRQ) are not this transfer's, as PXE ROMs treat them.
      if (!locked) {
        locked = true;
        peerPort = rinfo.port;
      } else if (rinfo.port !== peerPort) return;
      tries = 0;
      if (packet.opcode === Opcode.Error) return finish(new Error(`tftp error ${packet.message}`));
      if (packet.opcode === Opcode.OptionAck) {
        blksize = Number(packet.options.find((o) => o.name.toLowerCase() === "blksize")?.value ?? 512);
        last = encodePacket({ opcode: Opcode.Ack, block: 0 });
        return send();
      }
      if (packet.opcode !== Opcode.Data) return;
      if (packet.block === ((lastBlock + 1) & 0xffff)) {
        lastBlock = packet.block;
        bytes += packet.data.length;
      }
      last = encodePacket({ opcode: Opcode.Ack, block: packet.block });
      if (packet.data.length < blksize && packet.block === lastBlock) {
        // The final ACK (RFC 1350 §6), which firmware sends before it moves on. Closed only once it
        // has left: `send` is asynchronous in Node, and a close right after it dropped the ACK, so
        // the server retried its last block for half a minute to a closed port (or to the next
        // transfer that reused it).
        clearTimeout(timer);
        s.removeAllListeners("message");
        s.send(last, peerPort, server, () => finish());
        return;
      }
      send();
    });
    s.bind(0, send);
  });
}

/** Expand what iPXE would (the settings the scripts use), from `set` lines and the machine. */
function expand(text: string, vars: Map<string, string>): string {
  return text.replace(/\$\{([^}:]+)(?::[^}]*)?\}/g, (_m, name: string) => vars.get(name) ?? "");
}

/** The script's variables, and the URLs of its `chain`, `kernel` and `initrd` lines (first of each). */
function readScript(script: string, vars: Map<string, string>): { chain?: string; kernel?: string; initrd?: string } {
  const found: { chain?: string; kernel?: string; initrd?: string } = {};
  for (const raw of script.split("\n")) {
    const line = raw.trim();
    const set = /^set\s+(\S+)\s+(\S+)\s*$/.exec(line);
    if (set && !vars.has(set[1]!)) vars.set(set[1]!, expand(set[2]!, vars));
    const command = /^(chain|kernel|initrd)\s/.exec(line)?.[1] as "chain" | "kernel" | "initrd" | undefined;
    if (!command || found[command]) continue;
    const url = line
      .split(/\s+/)
      .slice(1)
      .map((token) => expand(token, vars))
      .find((token) => /^https?:\/\//.test(token));
    if (url) found[command] = url;
  }
  return found;
}

async function httpGet(url: string): Promise<{ bytes: number; text?: string }> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${url}`);
  if (!url.endsWith(".ipxe") && !url.includes(".ipxe?")) {
    let bytes = 0;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
    return { bytes };
  }
  const text = await response.text();
  return { bytes: text.length, text };
}

async function machine(mac: string): Promise<MachineResult> {
  const start = performance.now();
  let step = "dhcp (PXE)";
  const steps: Record<string, number> = {};
  let stepStart = start;
  const enter = (next: string) => {
    const now = performance.now();
    steps[step] = (steps[step] ?? 0) + now - stepStart;
    step = next;
    stepStart = now;
  };
  let bytes = 0;
  try {
    const pxe = await dora(mac, false);
    if (!pxe) throw new Error("no lease");
    enter("tftp");
    bytes += await tftpGet(formatIpv4(pxe.siaddr), pxe.file);
    enter("dhcp (iPXE)");
    const ipxe = await dora(mac, true);
    if (!ipxe || !/^https?:\/\//.test(ipxe.file)) throw new Error(`no iPXE lease or no URL (${ipxe?.file})`);
    const vars = new Map([
      ["mac", mac],
      ["net0/mac", mac],
      ["netX/mac", mac.replace(/:/g, "-")],
      ["buildarch", "i386"],
      ["platform", "pcbios"],
      ["ip", formatIpv4(ipxe.yiaddr)],
    ]);
    // `${netX/mac:hexhyp}` is the hyphenated form; plain `${mac}` the colon form.
    enter("entry script");
    let script = await httpGet(ipxe.file);
    bytes += script.bytes;
    let urls = readScript(script.text ?? "", vars);
    if (urls.chain && !urls.kernel) {
      enter("machine script");
      script = await httpGet(urls.chain);
      bytes += script.bytes;
      urls = readScript(script.text ?? "", vars);
    }
    if (!urls.kernel || !urls.initrd) throw new Error("the script names no kernel and initrd");
    enter("kernel");
    bytes += (await httpGet(urls.kernel)).bytes;
    enter("initrd");
    bytes += (await httpGet(urls.initrd)).bytes;
    enter("done");
    return { mac, ok: true, ms: performance.now() - start, bytes, steps };
  } catch (error) {
    // undici says only "fetch failed"; the cause (ECONNRESET, a timeout…) says whose it was.
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    const why = cause ? ` (${cause.code ?? cause.message})` : "";
    return {
      mac,
      ok: false,
      ms: performance.now() - start,
      failedAt: `${step}: ${(error as Error).message}${why}`,
      bytes,
    };
  }
}

const plan = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as StormPlan;
await new Promise<void>((resolve) => socket.bind(68, resolve));
socket.setBroadcast(true);
const started = performance.now();
// One process plays every machine: how late its event loop ran says whether a slow step was the
// server's or the simulator's own (a PXE ROM has a CPU to itself).
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const runs = plan.macs.map(async (mac, i) => {
  await sleep((plan.windowMs * i) / plan.macs.length);
  const deadline = sleep(plan.deadlineMs).then(
    (): MachineResult => ({ mac, ok: false, ms: plan.deadlineMs, failedAt: "deadline", bytes: 0 }),
  );
  return Promise.race([machine(mac), deadline]);
});
const results = await Promise.all(runs);
socket.close();
loopDelay.disable();
const loop = { p99Ms: loopDelay.percentile(99) / 1e6, maxMs: loopDelay.max / 1e6 };
// Exit once the line has left: stdout to a pipe is asynchronous, and exiting at once cut a long
// report short.
process.stdout.write(`${JSON.stringify({ wallMs: performance.now() - started, loop, results })}\n`, () =>
  process.exit(0),
);
