/**
 * Clients caught mid-DORA by a flood, for the saturation test: `node --import tsx
 * test/dhcp/mid-dora-client.ts COUNT SERVER_IP`, run in a client namespace whose interface has an
 * address. COUNT clients broadcast DISCOVERs until each has an OFFER (retransmitting every second,
 * as firmware does) and print `offered N`; then, on a line `go` on stdin, each sends its REQUEST
 * for the address offered (SELECTING, RFC 2131 §4.3.2), once more after 2 s if no answer came, and
 * the script prints one JSON line `{"acked":…,"naked":…,"unanswered":…}` and exits.
 */
import dgram from "node:dgram";
import { createInterface } from "node:readline";
import { parseIpv4 } from "../../src/config/primitives.js";
import { MessageType, Option } from "../../src/dhcp/options.js";
import {
  addressBytes,
  BootOp,
  clientRequest,
  decode,
  encode,
  hardwareAddress,
  messageType,
} from "../../src/dhcp/packet.js";

const count = Number(process.argv[2]);
const serverIp = parseIpv4(process.argv[3] ?? "");
if (!Number.isInteger(count) || count < 1 || count > 250 || serverIp === undefined) {
  process.stderr.write("usage: mid-dora-client.ts COUNT(1-250) SERVER_IP\n");
  process.exit(2);
}

const macOf = (i: number) => `02:00:5f:00:00:${i.toString(16).padStart(2, "0")}`;
const macs = Array.from({ length: count }, (_, i) => macOf(i));
const xidOf = (i: number) => 0x6d1d0000 + i;
const offers = new Map<string, number>();
const answers = new Map<string, "ACK" | "NAK">();

const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
socket.on("message", (data) => {
  try {
    const reply = decode(data);
    if (reply.op !== BootOp.Reply) return;
    const mac = hardwareAddress(reply);
    const type = messageType(reply);
    if (type === MessageType.Offer && !offers.has(mac)) offers.set(mac, reply.yiaddr);
    if (type === MessageType.Ack) answers.set(mac, "ACK");
    if (type === MessageType.Nak && !answers.has(mac)) answers.set(mac, "NAK");
  } catch {
    /* not DHCP */
  }
});
await new Promise<void>((resolve) => socket.bind(68, resolve));
socket.setBroadcast(true);

const broadcast = (packet: Buffer) =>
  new Promise<void>((resolve, reject) =>
    socket.send(packet, 67, "255.255.255.255", (e) => (e ? reject(e) : resolve())),
  );
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (let round = 0; round < 10 && offers.size < count; round++) {
  for (const [i, mac] of macs.entries()) {
    if (offers.has(mac)) continue;
    await broadcast(
      encode(clientRequest(mac, xidOf(i), new Map([[Option.MessageType, Buffer.from([MessageType.Discover])]]))),
    );
  }
  await sleep(1_000);
}
process.stdout.write(`offered ${offers.size}\n`);

await new Promise<void>((resolve) => {
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim() === "go") {
      lines.close();
      resolve();
    }
  });
});

const request = (i: number, mac: string) =>
  encode(
    clientRequest(
      mac,
      xidOf(i),
      new Map([
        [Option.MessageType, Buffer.from([MessageType.Request])],
        [Option.ServerIdentifier, addressBytes(serverIp)],
        [Option.RequestedIpAddress, addressBytes(offers.get(mac)!)],
      ]),
    ),
  );
for (let attempt = 0; attempt < 2; attempt++) {
  for (const [i, mac] of macs.entries()) if (offers.has(mac) && !answers.has(mac)) await broadcast(request(i, mac));
  await sleep(2_000);
}
const tally = { acked: 0, naked: 0, unanswered: 0 };
for (const mac of offers.keys()) {
  const answer = answers.get(mac);
  if (answer === "ACK") tally.acked++;
  else if (answer === "NAK") tally.naked++;
  else tally.unanswered++;
}
process.stdout.write(`${JSON.stringify(tally)}\n`);
socket.close();
