/**
 * The fuzz sender: runs inside the client namespace (`ip netns exec NS node --import tsx
 * bench/fuzz/sender.ts …`), bound to the attacker's own address, and sends one protocol's worth of
 * hostile input at the daemon. Prints one JSON line with its tally when done.
 *
 *   --protocol dhcp|tftp|http  --server IP  --bind IP  --seed N  --count N  --daemon-pid PID
 *
 * UDP is paced, not blasted: a datagram the kernel drops because the daemon's socket is full tests
 * nothing, so the rate backs off whenever the daemon namespace's UDP RcvbufErrors grows (read from
 * /proc/PID/net/snmp, which shows the daemon's namespace) and creeps up while it does not.
 */
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readPcap } from "../../test/dhcp/pcap.js";
import { mutateDhcp, mutateHttp, mutateTftp, Random, strayForTid, syntheticDhcpSeeds } from "./mutate.js";

export interface SenderTally {
  protocol: string;
  sent: number;
  ms: number;
  /** Datagrams the daemon's namespace dropped for a full receive buffer while we sent. */
  kernelDrops?: number;
  /** UDP: datagrams that came back to us (replies, ERRORs, DATA). */
  repliesSeen?: number;
  /** TFTP: datagrams sent to transfer ports (TIDs) rather than port 69. */
  toTransferPorts?: number;
  /** HTTP: answers by status line ("400", "404", …, "none" for a closed or silent connection). */
  statuses?: Record<string, number>;
  halfOpen?: number;
}

const CAPTURES = ["dhclient-dora-release", "udhcpc-pxe-dora", "ipxe-bios-qemu", "ovmf-uefi-pxe"];
const CAPTURES_DIR = join(fileURLToPath(new URL("../../testdata/dhcp", import.meta.url)));

/** Real clients' DHCP requests: every client packet of the four captures, plus the types a DORA lacks. */
export function dhcpSeeds(): Buffer[] {
  const captured = CAPTURES.flatMap((name) =>
    readPcap(join(CAPTURES_DIR, `${name}.pcap`))
      .filter((d) => d.destinationPort === 67)
      .map((d) => d.payload),
  );
  return [...captured, ...syntheticDhcpSeeds(captured)];
}

/** The daemon namespace's UDP receive-buffer drops; undefined once the daemon is gone (a crash). */
function udpReceiveBufferErrors(pid: number): number | undefined {
  let snmp: string;
  try {
    snmp = readFileSync(`/proc/${pid}/net/snmp`, "utf8");
  } catch {
    return undefined;
  }
  const lines = snmp.split("\n").filter((l) => l.startsWith("Udp:"));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf("RcvbufErrors")]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Send `count` datagrams made by `next` at an adaptive rate: +10% per 200 ms tick without kernel
 * drops, -30% on a tick with drops. Between 500 and 100,000 datagrams a second.
 */
async function pacedUdp(
  server: string,
  count: number,
  daemonPid: number,
  next: () => { bytes: Buffer; port: number; socket: Socket },
): Promise<{ sent: number; kernelDrops: number }> {
  const startDrops = udpReceiveBufferErrors(daemonPid) ?? 0;
  let rate = 5000;
  let sent = 0;
  let lastDrops = startDrops;
  let tickStart = Date.now();
  while (sent < count) {
    const tickEnd = tickStart + 200;
    const quota = Math.min(count - sent, Math.ceil(rate / 5));
    // Spread the tick's quota in 10 slices so a burst does not fill the socket on its own.
    for (let slice = 0; slice < 10 && sent < count; slice++) {
      const n = Math.ceil(quota / 10);
      let last: Promise<void> = Promise.resolve();
      for (let i = 0; i < n && sent < count; i++, sent++) {
        const { bytes, port, socket } = next();
        last = new Promise<void>((resolve) => socket.send(bytes, port, server, () => resolve()));
      }
      await last;
      const sliceEnd = tickStart + ((slice + 1) * 200) / 10;
      if (Date.now() < sliceEnd) await sleep(sliceEnd - Date.now());
    }
    if (Date.now() < tickEnd) await sleep(tickEnd - Date.now());
    const drops = udpReceiveBufferErrors(daemonPid);
    if (drops === undefined) break; // the daemon died: the campaign reports it
    rate = drops > lastDrops ? Math.max(500, rate * 0.7) : Math.min(100_000, rate * 1.1);
    lastDrops = drops;
    tickStart = Date.now();
    if (sent % 50_000 < quota) process.stderr.write(`${JSON.stringify({ progress: sent, rate: Math.round(rate) })}\n`);
  }
  await sleep(300);
  return { sent, kernelDrops: (udpReceiveBufferErrors(daemonPid) ?? lastDrops) - startDrops };
}

/** An unconnected socket on the attacker's address: ICMP port-unreachable does not end its sends. */
function bindSocket(address: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: "udp4" });
    socket.once("error", reject);
    socket.bind({ address, port: 0 }, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

async function fuzzDhcp(
  r: Random,
  server: string,
  bind: string,
  count: number,
  daemonPid: number,
): Promise<SenderTally> {
  const seeds = dhcpSeeds();
  const socket = await bindSocket(bind);
  let repliesSeen = 0;
  socket.on("message", () => repliesSeen++);
  const started = Date.now();
  const result = await pacedUdp(server, count, daemonPid, () => ({ bytes: mutateDhcp(r, seeds), port: 67, socket }));
  socket.close();
  return {
    protocol: "dhcp",
    sent: result.sent,
    ms: Date.now() - started,
    kernelDrops: result.kernelDrops,
    repliesSeen,
  };
}

/**
 * TFTP from 32 source ports, so requests are not all folded into one transfer. What comes back
 * from a port other than 69 names a transfer (its TID): 10% of the datagrams go there (ACK, ERROR
 * or DATA off-sequence), or to a random port no transfer holds.
 */
async function fuzzTftp(
  r: Random,
  server: string,
  bind: string,
  count: number,
  daemonPid: number,
): Promise<SenderTally> {
  const sockets = await Promise.all(Array.from({ length: 32 }, () => bindSocket(bind)));
  const transferPorts: number[] = [];
  let repliesSeen = 0;
  for (const socket of sockets) {
    socket.on("message", (_msg, rinfo) => {
      repliesSeen++;
      if (rinfo.port !== 69 && transferPorts.length < 4096 && !transferPorts.includes(rinfo.port))
        transferPorts.push(rinfo.port);
    });
  }
  let toTransferPorts = 0;
  const started = Date.now();
  const result = await pacedUdp(server, count, daemonPid, () => {
    const socket = r.pick(sockets);
    if (r.chance(0.1)) {
      toTransferPorts++;
      const port = transferPorts.length && r.chance(0.7) ? r.pick(transferPorts) : 1024 + r.int(64_000);
      return { bytes: strayForTid(r), port, socket };
    }
    return { bytes: mutateTftp(r), port: 69, socket };
  });
  for (const socket of sockets) socket.close();
  return {
    protocol: "tftp",
    sent: result.sent,
    ms: Date.now() - started,
    kernelDrops: result.kernelDrops,
    repliesSeen,
    toTransferPorts,
  };
}

/** One request on a fresh connection; resolves with the status the daemon answered, or "none". */
function httpExchange(server: string, bind: string, probe: ReturnType<typeof mutateHttp>): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: server, port: 80, localAddress: bind });
    let status: string | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      // RST rather than FIN: no TIME_WAIT on our side, so 10^5 connections do not exhaust ports.
      if (!socket.destroyed) socket.resetAndDestroy();
      resolve(status ?? "none");
    };
    // A half-open client holds its connection for 2 s, and 2 s is what the others give the daemon
    // to answer: a request whose body never comes (Content-Length lied) is answered by no server.
    const timer = setTimeout(finish, 2000);
    socket.on("error", finish);
    socket.on("close", finish);
    socket.on("data", (chunk: Buffer) => {
      if (status === undefined)
        status = /^HTTP\/1\.[01] (\d{3})/.exec(chunk.toString("latin1", 0, 32))?.[1] ?? "garbage";
      // The head is all we judge; a body (a bootloader) is not worth reading to the end.
      setImmediate(finish);
    });
    socket.on("connect", () => {
      if (probe.split) {
        const half = probe.bytes.length >> 1;
        socket.write(probe.bytes.subarray(0, half));
        setTimeout(() => !socket.destroyed && socket.write(probe.bytes.subarray(half)), 50);
      } else {
        socket.write(probe.bytes);
      }
    });
  });
}

async function fuzzHttp(r: Random, server: string, bind: string, count: number): Promise<SenderTally> {
  const statuses: Record<string, number> = {};
  let sent = 0;
  let halfOpen = 0;
  const started = Date.now();
  const worker = async () => {
    while (sent < count) {
      sent++;
      const probe = mutateHttp(r);
      if (probe.halfOpen) halfOpen++;
      const status = await httpExchange(server, bind, probe);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (sent % 10_000 === 0) process.stderr.write(`${JSON.stringify({ progress: sent })}\n`);
    }
  };
  await Promise.all(Array.from({ length: 128 }, worker));
  return { protocol: "http", sent, ms: Date.now() - started, statuses, halfOpen };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      protocol: { type: "string" },
      server: { type: "string" },
      bind: { type: "string" },
      seed: { type: "string", default: "1" },
      count: { type: "string", default: "10000" },
      "daemon-pid": { type: "string" },
    },
  });
  const { protocol, server, bind } = values;
  const daemonPid = Number(values["daemon-pid"]);
  if (!protocol || !server || !bind || !Number.isInteger(daemonPid)) {
    process.stderr.write(
      "usage: sender.ts --protocol dhcp|tftp|http --server IP --bind IP --daemon-pid PID [--seed N] [--count N]\n",
    );
    process.exit(2);
  }
  const r = new Random(Number(values.seed));
  const count = Number(values.count);
  // The campaign starts its real clients on this line, so they overlap the flood however short.
  process.stderr.write(`${JSON.stringify({ started: protocol })}\n`);
  let tally: SenderTally;
  if (protocol === "dhcp") tally = await fuzzDhcp(r, server, bind, count, daemonPid);
  else if (protocol === "tftp") tally = await fuzzTftp(r, server, bind, count, daemonPid);
  else if (protocol === "http") tally = await fuzzHttp(r, server, bind, count);
  else throw new Error(`unknown protocol ${protocol}`);
  process.stdout.write(`${JSON.stringify(tally)}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
