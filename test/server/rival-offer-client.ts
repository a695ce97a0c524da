/**
 * A client both servers offered different addresses, which takes one while a new client's DISCOVER
 * comes in (as in a boot storm). Run in a namespace on the segment:
 * `node --import tsx test/server/rival-offer-client.ts SERVER_A SERVER_B ROUNDS`. Each round, a new
 * MAC's DISCOVER goes to A and, at the same instant, to B asking (option 50) for an address far
 * from the one A picks, so neither server has heard of the other's offer when it makes its own.
 * Once both have (a second later), a second new MAC's DISCOVER goes to A and right behind it the
 * first MAC's REQUEST for A's offer. Prints one JSON line per round:
 * `{"round":N,"offers":{…},"answer"}` (`answer`: "ACK <address>", "NAK <message>" or "none").
 * With a fifth argument (the database URL), B is not asked: once A has offered, a binding of the
 * client to the far address, made before its DISCOVER (its previous DORA, heard late), is written
 * to the database and announced as another server would.
 */
import pg from "pg";
import dgram from "node:dgram";
import { formatIpv4 } from "../../src/config/primitives.js";
import { MessageType, Option } from "../../src/dhcp/options.js";
import { BootOp, decode, hardwareAddress, messageType, optionAddress } from "../../src/dhcp/packet.js";
import { buildRequest, type RawRequest } from "../dhcp/raw-client.js";

const [serverA, serverB, roundsText, farText, databaseUrl] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string?,
];
const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
interface Heard {
  mac: string;
  type: number;
  yiaddr: string;
  server: string;
  message: string;
}
const heard: Heard[] = [];
socket.on("message", (data) => {
  try {
    const reply = decode(data);
    if (reply.op !== BootOp.Reply) return;
    const server = optionAddress(reply, Option.ServerIdentifier);
    heard.push({
      mac: hardwareAddress(reply),
      type: messageType(reply) ?? 0,
      yiaddr: formatIpv4(reply.yiaddr),
      server: server === undefined ? "" : formatIpv4(server),
      message: reply.options.get(Option.Message)?.toString("latin1") ?? "",
    });
  } catch {
    /* not DHCP */
  }
});
await new Promise<void>((resolve) => socket.bind(68, resolve));
socket.setBroadcast(true);

let xid = 0x0ff30000;
const send = (request: RawRequest, to: string) =>
  new Promise<void>((resolve, reject) =>
    socket.send(buildRequest(request, xid++), 67, to, (e) => (e ? reject(e) : resolve())),
  );
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function waitFor(match: (h: Heard) => boolean, ms: number): Promise<Heard | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = heard.find(match);
    if (found || Date.now() > deadline) return found;
    await sleep(20);
  }
}

const farBase = farText.split(".").map(Number) as [number, number, number, number];
for (let round = 0; round < Number(roundsText); round++) {
  const hex = round.toString(16).padStart(2, "0");
  const mode = databaseUrl ? "01" : "00";
  const mac = `02:0f:f3:${mode}:${hex}:01`;
  const newcomer = `02:0f:f3:${mode}:${hex}:02`;
  const far = [farBase[0], farBase[1], farBase[2], farBase[3] + round].join(".");
  const before = Date.now();
  await Promise.all([
    send({ mac, type: "Discover" }, serverA),
    databaseUrl ? Promise.resolve() : send({ mac, type: "Discover", requested: far }, serverB),
  ]);
  const fromA = await waitFor((h) => h.mac === mac && h.type === MessageType.Offer && h.server === serverA, 3000);
  const fromB = databaseUrl
    ? { yiaddr: far }
    : await waitFor((h) => h.mac === mac && h.type === MessageType.Offer && h.server === serverB, 3000);
  const offers = { a: fromA?.yiaddr, b: fromB?.yiaddr };
  if (!fromA) {
    process.stdout.write(`${JSON.stringify({ round, offers, answer: "none" })}\n`);
    continue;
  }
  if (databaseUrl) {
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      await db.query(
        `INSERT INTO leases (address, mac, expires_at, state, updated_at) VALUES ($1, $2, $3, 'bound', $4)`,
        [far, mac, Date.now() + 3_600_000, before - 500],
      );
      await db.query(`SELECT pg_notify('centra_pxe_leases', $1)`, [`rival-offer-client|${far}`]);
    } finally {
      await db.end();
    }
  }
  await sleep(1000);
  await send({ mac: newcomer, type: "Discover" }, serverA);
  await send({ mac, type: "Request", requested: fromA.yiaddr, serverId: serverA }, serverA);
  const answer = await waitFor(
    (h) => h.mac === mac && (h.type === MessageType.Ack || h.type === MessageType.Nak),
    3000,
  );
  const text = !answer ? "none" : answer.type === MessageType.Ack ? `ACK ${answer.yiaddr}` : `NAK ${answer.message}`;
  process.stdout.write(`${JSON.stringify({ round, offers, answer: text })}\n`);
}
socket.close();
