/**
 * A hand-made DHCP client for attacker tests: `node --import tsx test/dhcp/raw-client.ts STEPS.json`,
 * run in a client namespace whose interface has an address. Each step broadcasts its packets (any
 * chaddr, giaddr, message type: what a stranger on the link can forge) to 255.255.255.255:67 with
 * the broadcast flag, then listens on :68 for `waitMs`; every reply is printed as one JSON line
 * `{"step":N,"type":"OFFER","mac":"…","yiaddr":"…"}`, then `done`.
 */
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { formatIpv4, parseIpv4 } from "../../src/config/primitives.js";
import { MessageType, messageTypeName, Option } from "../../src/dhcp/options.js";
import {
  addressBytes,
  clientRequest,
  BootOp,
  decode,
  encode,
  hardwareAddress,
  messageType,
} from "../../src/dhcp/packet.js";

export interface RawRequest {
  mac: string;
  type: keyof typeof MessageType;
  requested?: string;
  serverId?: string;
  ciaddr?: string;
  giaddr?: string;
  vendor?: string;
}

export interface RawStep {
  send: RawRequest[];
  waitMs: number;
}

export function buildRequest(spec: RawRequest, xid: number): Buffer {
  const options = new Map<number, Buffer>([[Option.MessageType, Buffer.from([MessageType[spec.type]])]]);
  if (spec.requested) options.set(Option.RequestedIpAddress, addressBytes(parseIpv4(spec.requested)!));
  if (spec.serverId) options.set(Option.ServerIdentifier, addressBytes(parseIpv4(spec.serverId)!));
  if (spec.vendor) options.set(Option.VendorClassIdentifier, Buffer.from(spec.vendor, "latin1"));
  // hlen: as many bytes as the MAC given: a forger picks hlen too (1 to 16 bytes of chaddr).
  return encode(
    clientRequest(spec.mac, xid, options, {
      ...(spec.ciaddr ? { ciaddr: parseIpv4(spec.ciaddr)! } : {}),
      ...(spec.giaddr ? { giaddr: parseIpv4(spec.giaddr)! } : {}),
    }),
  );
}

async function main(stepsFile: string): Promise<void> {
  const steps = JSON.parse(readFileSync(stepsFile, "utf8")) as RawStep[];
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  let step = 0;
  socket.on("message", (data) => {
    try {
      const reply = decode(data);
      if (reply.op !== BootOp.Reply) return;
      process.stdout.write(
        `${JSON.stringify({ step, type: messageTypeName(messageType(reply)), mac: hardwareAddress(reply), yiaddr: formatIpv4(reply.yiaddr) })}\n`,
      );
    } catch {
      /* not DHCP */
    }
  });
  await new Promise<void>((resolve) => socket.bind(68, resolve));
  socket.setBroadcast(true);
  let xid = 0x5eed0000;
  for (const s of steps) {
    for (const request of s.send) {
      await new Promise<void>((resolve, reject) =>
        socket.send(buildRequest(request, xid++), 67, "255.255.255.255", (e) => (e ? reject(e) : resolve())),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, s.waitMs));
    step++;
  }
  socket.close();
  process.stdout.write("done\n");
}

// Run as a script only (test/server/race-client.ts imports buildRequest).
if (process.argv[2] && process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv[2]);
