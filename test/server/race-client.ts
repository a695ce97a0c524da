/**
 * Two clients' DHCP exchanges raced against two servers at the same instant, each server asked
 * for one of them only (unicast to its address, as a relay would send), so neither server has
 * heard of the other's client when it picks an address. Run in a namespace on the segment:
 * `node --import tsx test/server/race-client.ts SERVER_A SERVER_B ROUNDS`; prints one JSON line per
 * round: `{"round":N,"a":{"mac","offer","ack"},"b":{…}}` (`ack` is the ACKed address, or "NAK").
 */
import dgram from "node:dgram";
import { formatIpv4 } from "../../src/config/primitives.js";
import { BootOp, decode, hardwareAddress, messageType } from "../../src/dhcp/packet.js";
import { MessageType } from "../../src/dhcp/options.js";
import { buildRequest, type RawRequest } from "../dhcp/raw-client.js";

const [serverA, serverB, roundsText] = process.argv.slice(2) as [string, string, string];
const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
const waiting = new Map<string, (reply: { type: number; yiaddr: string }) => void>();
socket.on("message", (data) => {
  try {
    const reply = decode(data);
    if (reply.op !== BootOp.Reply) return;
    const key = `${hardwareAddress(reply)}/${messageType(reply) === MessageType.Offer ? "offer" : "answer"}`;
    waiting.get(key)?.({ type: messageType(reply) ?? 0, yiaddr: formatIpv4(reply.yiaddr) });
    waiting.delete(key);
  } catch {
    /* not DHCP */
  }
});
await new Promise<void>((resolve) => socket.bind(68, resolve));
socket.setBroadcast(true);

let xid = 0x7ace0000;
const send = (request: RawRequest, to: string) =>
  new Promise<void>((resolve, reject) =>
    socket.send(buildRequest(request, xid++), 67, to, (e) => (e ? reject(e) : resolve())),
  );
const reply = (mac: string, kind: "offer" | "answer") =>
  new Promise<{ type: number; yiaddr: string } | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 3_000);
    waiting.set(`${mac}/${kind}`, (r) => {
      clearTimeout(timer);
      resolve(r);
    });
  });

for (let round = 0; round < Number(roundsText); round++) {
  const hex = round.toString(16).padStart(2, "0");
  const macs = [`02:7a:ce:00:${hex}:0a`, `02:7a:ce:00:${hex}:0b`];
  const targets = [serverA, serverB];
  // Like a real client, DISCOVER again when no OFFER came (a refused claim, a lost packet).
  const offered = await Promise.all(
    macs.map(async (mac, i) => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const offer = reply(mac, "offer");
        await send({ mac, type: "Discover" }, targets[i]!);
        const got = await offer;
        if (got) return got;
      }
      return undefined;
    }),
  );
  const answers = macs.map((mac) => reply(mac, "answer"));
  await Promise.all(
    macs.map((mac, i) =>
      offered[i]
        ? send({ mac, type: "Request", requested: offered[i].yiaddr, serverId: targets[i]! }, targets[i]!)
        : Promise.resolve(),
    ),
  );
  const answered = await Promise.all(answers);
  const side = (i: number) => ({
    mac: macs[i],
    offer: offered[i]?.yiaddr,
    ack: answered[i] ? (answered[i].type === MessageType.Ack ? answered[i].yiaddr : "NAK") : undefined,
  });
  process.stdout.write(`${JSON.stringify({ round, a: side(0), b: side(1) })}\n`);
}
socket.close();
