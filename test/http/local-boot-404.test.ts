import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { machineBootloaderUrl } from "../../src/boot/boot-chain.js";
import { parseConfig } from "../../src/config/load.js";
import type { BootObservation, HttpObservation } from "../../src/contracts/boot-observation.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";

/**
 * `localBoot: http-404` over a real socket, with the real inventory and lifecycle behind the
 * HTTP part: before the node is installed, its UEFI HTTP boot URL (the one DHCP names for it)
 * serves the bootloader and its boot script is a script; once it is `provisioned`, both are
 * answered 404 — never a redirect — so the firmware goes on to its next boot option, while other
 * machines (and the shared bootloader URL) are served as before.
 */

const HTTP_404 = "52:54:00:40:40:01";
const EXIT = "52:54:00:40:40:02";
const dir = mkdtempSync(join(tmpdir(), "local-boot-404-"));
const bootloader = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(4094, 7)]);
let store: SqliteStore;
let part: ProvisioningPart;
let service: HttpService;
let base = "";
const seen: BootObservation[] = [];

before(async () => {
  mkdirSync(join(dir, "ipxe"));
  writeFileSync(join(dir, "ipxe", "ipxe.efi"), bootloader);
  mkdirSync(join(dir, "images", "nixos", "1"), { recursive: true });
  writeFileSync(join(dir, "images", "nixos", "1", "kernel"), "kernel");
  writeFileSync(join(dir, "images", "nixos", "1", "initrd"), "initrd");
  symlinkSync("1", join(dir, "images", "nixos", "current"));
  const config = parseConfig(`
stateDir: ${dir}
serverAddress: 127.0.0.1
dhcp: { mode: off }
http: { port: 0, bindAddress: 127.0.0.1 }
provisioning: { installTokenToAnyAddress: true }
profiles:
  worker: { image: nixos, localBoot: http-404 }
nodes:
  "${HTTP_404}": { profile: worker, hostname: worker-404 }
  "${EXIT}": { profile: worker, hostname: worker-exit, localBoot: exit }
`);
  store = openSqliteStore(":memory:");
  part = createProvisioning({ store, config, logger: silentLogger });
  await part.inventory.applyConfig(config);
  service = createHttpService({
    config,
    logger: silentLogger,
    resolver: part.resolver,
    observer: (o) => seen.push(o),
  });
  await service.start();
  base = `http://127.0.0.1:${service.address()!.port}`;
});

after(async () => {
  await service?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The node installed, as its installer's callback makes it. */
async function install(mac: string): Promise<void> {
  const node = await part.lifecycle.provision(mac, "test");
  const issued = await part.lifecycle.installToken(node.id);
  assert.ok(issued);
  const done = await part.lifecycle.callback({ token: issued.token, mac, outcome: "succeeded" });
  assert.equal(done.state, "provisioned");
}

/** One request through `agent` (node:http: its raw `connection` header, and whether the socket was reused). */
function request(
  agent: Agent,
  method: string,
  url: string,
): Promise<{ status: number; connection: string | undefined; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, method }, (res) => {
      res.resume();
      res.once("end", () =>
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, reusedSocket: req.reusedSocket }),
      );
    });
    req.once("error", reject).end();
  });
}

const machineScript = (mac: string) =>
  `${base}/boot/ipxe/machine.ipxe?mac=${mac.replace(/:/g, "-")}&platform=efi&buildarch=x86_64`;

test("a provisioned localBoot: http-404 machine gets 404 for its script and its UEFI HTTP boot bootloader; before, the files", async () => {
  const ownUrl = machineBootloaderUrl(`${base}/boot/ipxe/ipxe.efi`, HTTP_404);
  assert.equal(ownUrl, `${base}/boot/ipxe/machine/52-54-00-40-40-01/ipxe.efi`);

  // Before it is installed: the bootloader at its own URL, and a script (provisioning: the image).
  const before = await fetch(ownUrl);
  assert.equal(before.status, 200);
  assert.ok(Buffer.from(await before.arrayBuffer()).equals(bootloader));
  await part.lifecycle.provision(HTTP_404, "test");
  const installing = await fetch(machineScript(HTTP_404));
  assert.equal(installing.status, 200);
  assert.match(await installing.text(), /^#!ipxe[\s\S]*kernel .*centra\.hostname=worker-404/);
  assert.equal((await fetch(ownUrl, { method: "HEAD" })).status, 200, "a HEAD as the GET");

  const node = (await store.nodes.findByMac(HTTP_404))!;
  const issued = (await part.lifecycle.installToken(node.id))!;
  await part.lifecycle.callback({ token: issued.token, mac: HTTP_404, outcome: "succeeded" });
  assert.equal((await store.nodes.findByMac(HTTP_404))?.state, "provisioned");
  seen.length = 0;

  // Installed: 404 for both, no redirect, not cacheable, and the connection kept alive.
  for (const [url, what] of [
    [ownUrl, "bootloader"],
    [machineScript(HTTP_404), "script"],
  ] as const) {
    for (const method of ["GET", "HEAD"]) {
      const answer = await fetch(url, { method, redirect: "manual" });
      assert.equal(answer.status, 404, `${method} ${what}`);
      assert.equal(answer.headers.get("location"), null, `${method} ${what}: no redirect`);
      assert.equal(answer.headers.get("cache-control"), "no-store");
      if (method === "GET") assert.match(await answer.text(), /boots its local disk \(localBoot: http-404\)/);
    }
  }
  // EDK2 asks HEAD then GET on one connection and breaks on a server that closes between them.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await request(agent, "HEAD", ownUrl);
    const second = await request(agent, "GET", ownUrl);
    assert.deepEqual([first.status, second.status], [404, 404]);
    assert.notEqual(first.connection, "close");
    assert.ok(second.reusedSocket, "the GET came on the HEAD's connection");
  } finally {
    agent.destroy();
  }
  // The timeline sees each as this machine's, decided `localdisk`.
  for (let i = 0; i < 100 && seen.length < 6; i++) await new Promise((r) => setTimeout(r, 20));
  const observed = seen.filter((o): o is HttpObservation => o.source === "http");
  assert.deepEqual(
    observed.map((o) => [o.kind, o.status, o.mac, o.decision?.boot]),
    [
      ["bootloader", 404, HTTP_404, "localdisk"],
      ["bootloader", 404, HTTP_404, "localdisk"],
      ["machine-script", 404, HTTP_404, "localdisk"],
      ["machine-script", 404, HTTP_404, "localdisk"],
      ["bootloader", 404, HTTP_404, "localdisk"],
      ["bootloader", 404, HTTP_404, "localdisk"],
    ],
  );

  // Everyone else as before: the shared URL, and a provisioned machine leaving by `exit`.
  assert.equal((await fetch(`${base}/boot/ipxe/ipxe.efi`)).status, 200);
  await install(EXIT);
  const exit = await fetch(machineScript(EXIT));
  assert.equal(exit.status, 200);
  assert.match(await exit.text(), /booting from the local disk[\s\S]*\nexit \|\|/);
  const exitOwn = await fetch(machineBootloaderUrl(`${base}/boot/ipxe/ipxe.efi`, EXIT));
  assert.equal(exitOwn.status, 200, "only http-404 withholds the bootloader");
  assert.equal((await fetch(`${base}/boot/ipxe/machine/not-a-mac/ipxe.efi`)).status, 404);
});
