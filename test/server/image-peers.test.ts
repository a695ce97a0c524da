import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { addImage } from "../../src/images/images.js";
import { createLogger } from "../../src/log.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { openPgStore } from "../../src/store/pg-store.js";
import { type PostgresCluster, startPostgres } from "../support/postgres.js";

// Several servers on one database serve image files from their own stateDir (issue 12): a server
// lacking a registered version's files says so in /health, and copies them from a peer, taking
// them only when their sha256 is the recorded one. Two in-process servers on loopback.
let cluster: PostgresCluster | undefined;
const dirs: string[] = [];
const running: RunningServer[] = [];
let url = "";
const kernel = randomBytes(300_000);
const initrd = randomBytes(700_000);

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createNetServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });

async function serve(port: number, peers: string[]): Promise<{ server: RunningServer; stateDir: string }> {
  const stateDir = mkdtempSync(join(tmpdir(), "centra-peer-"));
  dirs.push(stateDir);
  mkdirSync(join(stateDir, "ipxe"));
  const config = parseConfig(
    JSON.stringify({
      interface: "lo",
      serverAddress: "127.0.0.1",
      stateDir,
      storage: { url, peers },
      dhcp: { mode: "off" },
      tftp: { enabled: false },
      http: { port },
      logLevel: "silent",
    }),
    "<test>",
  );
  const server = await startServer(config, createLogger("silent"));
  running.push(server);
  return { server, stateDir };
}

const health = async (port: number) => {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: response.status, body: (await response.json()) as { parts: Record<string, { detail?: string }> } };
};

async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

before(async () => {
  cluster = await startPostgres();
  if (!cluster) return;
  url = await cluster.createDatabase();
});
after(async () => {
  for (const server of running) await server.stop().catch(() => undefined);
  cluster?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

test("a server without a registered version's files says so, then copies them from a peer, verified", {
  timeout: 90_000,
}, async () => {
  const [portA, portB, portC, portBad] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // Server A holds the image: added on its host, recorded in the shared database.
  const a = await serve(portA, []);
  const source = mkdtempSync(join(tmpdir(), "centra-peer-src-"));
  dirs.push(source);
  writeFileSync(join(source, "kernel"), kernel);
  writeFileSync(join(source, "initrd"), initrd);
  const store = await openPgStore({ kind: "postgres", url, poolSize: 2 });
  try {
    await addImage({
      stateDir: a.stateDir,
      store,
      name: "nixos",
      version: "24.11",
      files: { kernel: join(source, "kernel"), initrd: join(source, "initrd") },
    });
    // Its arm64 build (swapped files, so a mix-up shows): a build line of its own, copied the same way.
    await addImage({
      stateDir: a.stateDir,
      store,
      name: "nixos",
      arch: "arm64",
      version: "a1",
      files: { kernel: join(source, "initrd"), initrd: join(source, "kernel") },
    });
  } finally {
    await store.close();
  }

  // A peer that serves other bytes under the same path: nothing of it is taken.
  const liar: HttpServer = createServer((_request, response) => response.end(randomBytes(300_000)));
  await new Promise<void>((resolve) => liar.listen(portBad, "127.0.0.1", resolve));
  try {
    await serve(portB, [`http://127.0.0.1:${portBad}`]);
    const refused = await until("server B to report the missing version", async () => {
      const h = await health(portB);
      return h.body.parts.images?.detail?.includes("sha256") ? h : undefined;
    });
    assert.equal(refused.status, 503);
    assert.match(refused.body.parts.images!.detail!, /nixos\/24\.11 \(kernel, initrd\)/);
    assert.match(refused.body.parts.images!.detail!, /nixos@arm64\/a1 \(kernel, initrd\)/);
    const notServed = await fetch(`http://127.0.0.1:${portB}/boot/images/nixos/24.11/kernel`);
    assert.equal(notServed.status, 404, "unverified bytes are never served");
  } finally {
    liar.close();
  }

  // Server C has server A as its peer: it copies the version and serves the same bytes.
  await serve(portC, [`http://127.0.0.1:${portA}`]);
  await until("server C to be healthy", async () => ((await health(portC)).status === 200 ? true : undefined));
  for (const [role, bytes] of [
    ["kernel", kernel],
    ["initrd", initrd],
  ] as const) {
    const response = await fetch(`http://127.0.0.1:${portC}/boot/images/nixos/current/${role}`);
    assert.equal(response.status, 200);
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(bytes), `${role} as added on server A`);
  }
  const arm = await fetch(`http://127.0.0.1:${portC}/boot/images/nixos@arm64/current/kernel`);
  assert.equal(arm.status, 200);
  assert.ok(Buffer.from(await arm.arrayBuffer()).equals(initrd), "the arm64 build's kernel, as added on server A");
});
