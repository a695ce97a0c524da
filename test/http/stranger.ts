/**
 * A stranger on the provisioning network, run inside the client namespace by limits.test.ts:
 * `stranger.ts MODE SERVER PORT FROM[,FROM…] [ARGS]`. Each mode prints one JSON line per finding
 * on stdout, so the test (in another namespace) reads what happened from the attacker's side.
 *
 * - `slowloris PATH`: one request, its headers one byte per second, forever; prints when the
 *   server hangs up and what it answered.
 * - `idle`: one keep-alive request, then silence; prints when the server hangs up.
 * - `hold N`: N keep-alive connections that each got an answer, then one more; prints whether the
 *   extra one was answered; keeps the N open until killed.
 * - `stall N PATH`: N connections from each FROM address that ask for PATH and never read;
 *   prints once all are connected and sending, keeps them until killed.
 */
import { connect, type Socket } from "node:net";

const [mode, server = "", portText = "80", fromList = "", ...rest] = process.argv.slice(2);
const port = Number(portText);
const sources = fromList.split(",").filter(Boolean);
const say = (finding: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(finding)}\n`);

function open(from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server, port, localAddress: from });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Resolves with what the server sent once it closes the connection, and how long that took. */
function untilClosed(socket: Socket, since: number): Promise<{ afterMs: number; received: string }> {
  let received = "";
  socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
  socket.on("error", () => undefined);
  return new Promise((resolve) =>
    socket.once("close", () => resolve({ afterMs: Date.now() - since, received: received.slice(0, 200) })),
  );
}

/** One request/answer on a kept-alive socket: resolves with the status line, or "closed". */
function ask(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let received = "";
    const onData = (d: Buffer) => {
      received += d.toString("latin1");
      // /health is small and answered with Content-Length: the head and the body come at once.
      if (/\r\n\r\n[\s\S]*\}/.test(received)) done(received.split("\r\n")[0] ?? "");
    };
    const done = (result: string) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve(result);
    };
    const onClose = () => done("closed");
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.on("error", () => undefined);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${server}\r\n\r\n`);
  });
}

async function slowloris(path: string): Promise<void> {
  const socket = await open(sources[0]!);
  const start = Date.now();
  const closed = untilClosed(socket, start);
  const text = `GET ${path} HTTP/1.1\r\nHost: ${server}\r\n`;
  let i = 0;
  const timer = setInterval(() => {
    // The request line and Host, then header lines that never end the head.
    const byte = i < text.length ? text[i] : "X-Slow: a\r\n"[(i - text.length) % 11];
    i++;
    if (!socket.destroyed) socket.write(byte!);
  }, 1000);
  const result = await closed;
  clearInterval(timer);
  say({ closed: true, bytesSent: i, ...result });
}

async function idle(): Promise<void> {
  const socket = await open(sources[0]!);
  const status = await ask(socket, "/health");
  const answeredAt = Date.now();
  say({ answered: status });
  const result = await untilClosed(socket, answeredAt);
  say({ closed: true, ...result });
}

async function hold(count: number): Promise<void> {
  const held: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = await open(sources[0]!);
    const status = await ask(socket, "/health");
    if (!status.startsWith("HTTP/1.1 200")) {
      say({ held: i, failed: status });
      return;
    }
    held.push(socket);
  }
  say({ held: held.length });
  let extra: string;
  try {
    const socket = await open(sources[0]!);
    extra = await Promise.race([
      ask(socket, "/health"),
      new Promise<string>((r) => setTimeout(() => r("no answer in 5 s"), 5000)),
    ]);
  } catch (error) {
    extra = `refused: ${(error as Error).message}`;
  }
  say({ extra, stillOpen: held.filter((s) => !s.destroyed && s.readyState === "open").length });
  // Keep the held connections busy enough that the idle timeout does not close them meanwhile.
  setInterval(() => {
    for (const s of held) if (s.writable) s.write(`GET /health HTTP/1.1\r\nHost: ${server}\r\n\r\n`);
  }, 1000);
}

async function stall(perSource: number, path: string): Promise<void> {
  const sockets: Socket[] = [];
  for (const from of sources) {
    for (let i = 0; i < perSource; i++) {
      const socket = await open(from);
      socket.on("error", () => undefined);
      // Never read: no 'data' listener and paused, so the kernel's receive window fills and stays full.
      socket.pause();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${server}\r\n\r\n`);
      sockets.push(socket);
    }
  }
  say({ stalled: sockets.length });
  setInterval(() => undefined, 60_000);
}

const run: Record<string, () => Promise<void>> = {
  slowloris: () => slowloris(rest[0] ?? "/health"),
  idle,
  hold: () => hold(Number(rest[0])),
  stall: () => stall(Number(rest[0]), rest[1] ?? "/"),
};
const chosen = run[mode ?? ""];
if (!chosen) {
  process.stderr.write("usage: stranger.ts slowloris|idle|hold|stall SERVER PORT FROM[,FROM…] [ARGS]\n");
  process.exit(2);
}
chosen().catch((error: unknown) => {
  say({ error: String(error) });
  process.exit(1);
});
