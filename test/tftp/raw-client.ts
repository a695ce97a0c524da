/**
 * A raw UDP TFTP peer for the refusal tests, run inside the client namespace:
 *   node --import tsx raw-client.ts '<json: { server, port, cases: [{ name, hex, waitMs }] }>'
 * Each case sends its bytes from its own socket (bound to `from` when given: one of the client's
 * addresses) and records every datagram that comes back within `waitMs` (never answering), then
 * one JSON line with all results goes to stdout.
 */
import { createSocket } from "node:dgram";

interface RawCase {
  name: string;
  hex: string;
  waitMs: number;
  from?: string;
}
interface RawReply {
  fromPort: number;
  hex: string;
}

const input = JSON.parse(process.argv[2] ?? "{}") as { server: string; port: number; cases: RawCase[] };

async function run(c: RawCase): Promise<[string, RawReply[]]> {
  const socket = createSocket("udp4");
  const replies: RawReply[] = [];
  socket.on("message", (msg, rinfo) => replies.push({ fromPort: rinfo.port, hex: msg.toString("hex") }));
  await new Promise<void>((resolve) => socket.bind(0, c.from, resolve));
  socket.send(Buffer.from(c.hex, "hex"), input.port, input.server);
  await new Promise((resolve) => setTimeout(resolve, c.waitMs));
  socket.close();
  return [c.name, replies];
}

const results = Object.fromEntries(await Promise.all(input.cases.map(run)));
process.stdout.write(`${JSON.stringify(results)}\n`);
