/**
 * What one DORA costs the DHCP core in JavaScript alone, without sockets, a store or a load
 * generator sharing the CPU: decode a DISCOVER, handle it, encode the OFFER, then the same for the
 * REQUEST and its ACK, for `--clients` MACs round and round (perfdhcp's `-R`). Set beside run.sh's
 * "main thread µs/DORA" it says how much of a DORA is the protocol core and how much the edge
 * (reading, sending, committing, the event loop): 15-25 µs against ~60 µs on the 2-CPU machine.
 *
 *   node --import tsx bench/dhcp/handle-cost.ts [--doras 200000] [--clients 1000]
 */
import { parseArgs } from "node:util";
import { FIRMWARE_TABLE, httpBootBase } from "../../src/boot/firmware.js";
import { parseIpv4 } from "../../src/config/primitives.js";
import { handle, type DhcpContext } from "../../src/dhcp/handler.js";
import { MessageType, Option } from "../../src/dhcp/options.js";
import { clientRequest, decode, encode, hardwareAddress } from "../../src/dhcp/packet.js";
import { AddressPool } from "../../src/dhcp/pool.js";

const { values } = parseArgs({
  options: { doras: { type: "string", default: "200000" }, clients: { type: "string", default: "1000" } },
});
const doras = Number(values.doras);
const clients = Number(values.clients);
const ip = (text: string) => parseIpv4(text)!;
const relay = ip("10.231.0.2");
const context: DhcpContext = {
  mode: "server",
  serverAddress: ip("10.231.0.1"),
  subnets: [
    {
      network: ip("10.231.0.0"),
      mask: ip("255.255.0.0"),
      broadcast: ip("10.231.255.255"),
      router: ip("10.231.0.1"),
      dns: [],
      leaseSeconds: 3600,
      pool: new AddressPool(ip("10.231.1.0"), ip("10.231.250.255")),
      label: "10.231.0.0/16",
    },
  ],
  relays: new Set([relay]),
  lookupNode: () => undefined,
  boot: { firmware: FIRMWARE_TABLE, installed: () => new Set(), httpBase: httpBootBase("10.231.0.1", 80) },
  now: Date.now(),
};
const source = { address: relay, port: 67, pxePort: false };
// perfdhcp's DISCOVER: message type, parameter request list; relayed (giaddr), as in run.sh.
const macOf = (n: number) =>
  `02:00:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, "0")}:${(n & 0xff).toString(16).padStart(2, "0")}`;
const discovers = Array.from({ length: clients }, (_, n) =>
  encode(
    clientRequest(
      macOf(n),
      n,
      new Map([
        [Option.MessageType, Buffer.from([MessageType.Discover])],
        [Option.ParameterRequestList, Buffer.from([1, 3, 6, 15, 28, 51])],
      ]),
      { giaddr: relay },
    ),
  ),
);
const start = performance.now();
let clientTime = 0;
let acks = 0;
for (let i = 0; i < doras; i++) {
  context.now = Date.now();
  const discover = decode(discovers[i % clients]!);
  const offer = handle(discover, context, source);
  if (offer.kind !== "reply") continue;
  encode(offer.reply, offer.maxSize);
  // The client's side (building its REQUEST) is not timed: the figure is the server's work.
  const paused = performance.now();
  const yiaddr = offer.reply.yiaddr;
  const request = encode(
    clientRequest(
      hardwareAddress(discover),
      discover.xid,
      new Map([
        [Option.MessageType, Buffer.from([MessageType.Request])],
        [Option.ServerIdentifier, Buffer.from([10, 231, 0, 1])],
        [
          Option.RequestedIpAddress,
          Buffer.from([yiaddr >>> 24, (yiaddr >>> 16) & 255, (yiaddr >>> 8) & 255, yiaddr & 255]),
        ],
        [Option.ParameterRequestList, Buffer.from([1, 3, 6, 15, 28, 51])],
      ]),
      { giaddr: relay },
    ),
  );
  clientTime += performance.now() - paused;
  const ack = handle(decode(request), context, source);
  if (ack.kind === "reply") {
    encode(ack.reply, ack.maxSize);
    acks++;
  }
}
const elapsed = performance.now() - start - clientTime;
process.stdout.write(
  `${acks} of ${doras} DORAs acknowledged: ${((elapsed * 1000) / doras).toFixed(2)} µs of server work a DORA (decode, handle, encode; twice)\n`,
);
