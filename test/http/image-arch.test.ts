import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { createApiPlugin } from "../../src/api/plugin.js";
import { createGrubConfigs } from "../../src/boot/grub.js";
import { parseConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { createHttpApp } from "../../src/http/app.js";
import { addImage } from "../../src/images/images.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";

/**
 * Images per architecture through the boot path the daemon serves (in-process, app.inject, a real
 * SQLite file and real image files): one image name, an x86_64 and an arm64 build; each machine's
 * script names its own architecture's kernel and that URL serves those bytes; an arm64 machine
 * whose image has only an x86_64 build gets no kernel at all, a script that says what is missing,
 * and a node event.
 */

const dir = mkdtempSync(join(tmpdir(), "image-arch-"));
const stateDir = join(dir, "state");
let store: SqliteStore;
let part: ProvisioningPart;
let app: FastifyInstance;
let config: Config;
let admin: string;

const BOTH = "52:54:00:00:0a:01";
const X86_ONLY = "52:54:00:00:0a:02";

before(async () => {
  store = openSqliteStore(join(dir, "centra-pxe.db"));
  const file = (name: string, bytes: string) => {
    writeFileSync(join(dir, name), bytes);
    return join(dir, name);
  };
  const x86 = { kernel: file("x86-kernel", "x86_64 kernel"), initrd: file("x86-initrd", "x86_64 initrd") };
  const arm = { kernel: file("arm-kernel", "arm64 kernel"), initrd: file("arm-initrd", "arm64 initrd") };
  await addImage({ stateDir, store, name: "debian", version: "12.5", files: x86 });
  await addImage({ stateDir, store, name: "debian", version: "a1", files: arm, arch: "arm64", cmdline: "arm=1" });
  await addImage({ stateDir, store, name: "legacy", version: "1", files: x86 });
  config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 10.0.100.10
profiles:
  worker: { image: debian }
  old: { image: legacy }
nodes:
  "${BOTH}": { profile: worker, hostname: both-01 }
  "${X86_ONLY}": { profile: old, hostname: x86-only-01 }
`);
  part = createProvisioning({ config, store, logger: silentLogger, addressOf: () => "127.0.0.1" });
  await part.service.start();
  const api = createApiPlugin({
    inventory: part.inventory,
    lifecycle: part.lifecycle,
    onEvent: part.onEvent,
    store,
    logger: silentLogger,
  });
  app = await createHttpApp({
    config,
    logger: silentLogger,
    resolver: part.resolver,
    health: () => ({}),
    extraPlugins: [api],
  });
  admin = (await createApiToken(store, "ops")).token;
});

after(async () => {
  await app?.close();
  await part?.service.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function script(mac: string, buildarch: string, platform = "efi"): Promise<string> {
  const response = await app.inject({
    url: `/boot/ipxe/machine.ipxe?mac=${mac.replace(/:/g, "-")}&buildarch=${buildarch}&platform=${platform}&uuid=&serial=`,
    headers: { host: "10.0.100.10" },
  });
  assert.equal(response.statusCode, 200);
  return response.body;
}

/** The kernel and initrd URLs of an iPXE script, fetched from the same app. */
async function bootFiles(body: string): Promise<{ kernelUrl: string; kernel: string; initrd: string }> {
  const kernelUrl = /^\s*kernel (http:\/\/\S+)/m.exec(body)?.[1];
  const initrdUrl = /^\s*initrd (?:--name \S+ )?(http:\/\/\S+)/m.exec(body)?.[1];
  assert.ok(kernelUrl && initrdUrl, body);
  const get = async (url: string) => {
    const response = await app.inject({ url: new URL(url).pathname });
    assert.equal(response.statusCode, 200, url);
    return response.body;
  };
  return { kernelUrl, kernel: await get(kernelUrl), initrd: await get(initrdUrl) };
}

test("one image name: an arm64 machine gets the arm64 build, x86 machines (UEFI and BIOS) the x86_64 one", async () => {
  const arm = await bootFiles(await script(BOTH, "arm64"));
  assert.equal(arm.kernelUrl, "http://10.0.100.10/boot/images/debian@arm64/a1/kernel");
  assert.deepEqual([arm.kernel, arm.initrd], ["arm64 kernel", "arm64 initrd"]);
  assert.match(await script(BOTH, "arm64"), /^\s*kernel \S+ initrd=initrd arm=1 /m, "the arm64 build's own cmdline");

  const x86 = await bootFiles(await script(BOTH, "x86_64"));
  assert.equal(x86.kernelUrl, "http://10.0.100.10/boot/images/debian/12.5/kernel");
  assert.deepEqual([x86.kernel, x86.initrd], ["x86_64 kernel", "x86_64 initrd"]);
  const bios = await bootFiles(await script(BOTH, "i386", "pcbios"));
  assert.equal(bios.kernel, "x86_64 kernel");

  // Debian's signed grub (Secure Boot) asks by $grub_cpu: the same choice, over TFTP.
  const grub = await createGrubConfigs({ resolver: () => part.resolver, logger: silentLogger })(
    `grub/machine/arm64/${BOTH}.cfg`,
    "127.0.0.1",
    config,
  );
  assert.match(String(grub), /^linux \/boot\/images\/debian@arm64\/a1\/kernel /m);
});

test("an arm64 machine whose image has no arm64 build: no kernel, a script saying what is missing, a node event", async () => {
  const body = await script(X86_ONLY, "arm64");
  assert.doesNotMatch(body, /^\s*kernel /m, "never the x86 kernel (iPXE: Exec format error)");
  assert.match(body, /image legacy has no arm64 build/);
  assert.match(body, /centra-pxe images add legacy --arch arm64 --kernel F --initrd F/);
  const node = await store.nodes.findByMac(X86_ONLY);
  assert.ok(node);
  const events = await store.events.list({ nodeId: node.id, kind: "image-build-missing" });
  assert.equal(events.length, 1);
  assert.deepEqual(
    { image: events[0]!.details.image, arch: events[0]!.details.arch, buildarch: events[0]!.details.buildarch },
    { image: "legacy", arch: "arm64", buildarch: "arm64" },
  );
  await script(X86_ONLY, "arm64");
  assert.equal(
    (await store.events.list({ nodeId: node.id, kind: "image-build-missing" })).length,
    1,
    "at most once a minute while it keeps asking",
  );
  // The same node on an x86 machine boots.
  assert.equal((await bootFiles(await script(X86_ONLY, "x86_64"))).kernel, "x86_64 kernel");
});

test("the API lists each build's arch and switches one architecture's current", async () => {
  const auth = { authorization: `Bearer ${admin}` };
  const listed = (await app.inject({ url: "/api/v1/images?name=debian", headers: auth })).json() as {
    images: { arch: string; version: string; current: boolean }[];
  };
  assert.deepEqual(
    listed.images.map((i) => `${i.arch} ${i.version} ${i.current}`),
    ["x86_64 12.5 true", "arm64 a1 true"],
  );
  const wrong = await app.inject({
    method: "PUT",
    url: "/api/v1/images/debian/current",
    headers: auth,
    payload: { version: "a1" },
  });
  assert.equal(wrong.statusCode, 404, "a1 is not an x86_64 version");
  const bad = await app.inject({
    method: "PUT",
    url: "/api/v1/images/debian/current",
    headers: auth,
    payload: { version: "a1", arch: "riscv64" },
  });
  assert.equal(bad.statusCode, 400);
  const ok = await app.inject({
    method: "PUT",
    url: "/api/v1/images/debian/current",
    headers: auth,
    payload: { version: "a1", arch: "arm64" },
  });
  assert.equal(ok.statusCode, 200, ok.body);
});
