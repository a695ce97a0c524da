import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config/load.js";
import { createConfigResolver } from "../boot/resolver.js";
import { createFileImageCatalog } from "../boot/image-catalog.js";
import { pino } from "pino";
import { silentLogger, type Logger } from "../log.js";
import type { ServiceHealth } from "../contracts/service.js";
import { baseUrlFor, createHttpApp, machineFromQuery } from "./app.js";

const stateDir = mkdtempSync(join(tmpdir(), "http-app-"));
after(() => rmSync(stateDir, { recursive: true, force: true }));
mkdirSync(join(stateDir, "ipxe"));
writeFileSync(join(stateDir, "ipxe", "undionly.kpxe"), "bios-bootloader");
writeFileSync(join(stateDir, "outside-ipxe"), "secret");
symlinkSync(join(stateDir, "outside-ipxe"), join(stateDir, "ipxe", "escape.efi"));
for (const version of ["24.05", "24.11"]) {
  mkdirSync(join(stateDir, "images", "nixos", version), { recursive: true });
  writeFileSync(join(stateDir, "images", "nixos", version, "kernel"), `kernel-${version}-`.padEnd(4096, "k"));
  writeFileSync(join(stateDir, "images", "nixos", version, "initrd"), `initrd-${version}`);
}
symlinkSync("24.05", join(stateDir, "images", "nixos", "current"));

const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 10.0.100.10
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01 }
`);
let health: Record<string, ServiceHealth> = { http: { ok: true }, tftp: { ok: true } };
const app = await createHttpApp({
  config,
  logger: silentLogger,
  resolver: createConfigResolver(createFileImageCatalog(stateDir)),
  health: () => health,
  extraPlugins: [async (api) => void api.get("/api/v1/ping", async () => ({ pong: true }))],
});
after(() => app.close());

test("the entry script chains with the Host the client used", async () => {
  const response = await app.inject({ url: "/boot/ipxe/boot.ipxe", headers: { host: "10.0.100.10:8080" } });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers["cache-control"], "no-store");
  assert.match(response.body, /^#!ipxe\n/);
  assert.match(
    response.body,
    /chain --autofree --replace http:\/\/10\.0\.100\.10:8080\/boot\/ipxe\/machine\.ipxe\?mac=/,
  );
});

test("known MAC: the current image version, resolved per request", async () => {
  const url = "/boot/ipxe/machine.ipxe?mac=52-54-00-12-34-56&buildarch=x86_64&platform=efi&uuid=&serial=";
  const before = await app.inject({ url, headers: { host: "h" } });
  assert.match(
    before.body,
    /^kernel http:\/\/h\/boot\/images\/nixos\/24\.05\/kernel initrd=initrd centra\.profile=control-plane centra\.hostname=control-plane-01 /m,
  );
  // `images use nixos 24.11`, as the CLI does it: a new symlink renamed over the old one.
  symlinkSync("24.11", join(stateDir, "images", "nixos", "current.new"));
  renameSync(join(stateDir, "images", "nixos", "current.new"), join(stateDir, "images", "nixos", "current"));
  try {
    const afterSwitch = await app.inject({ url, headers: { host: "h" } });
    assert.match(afterSwitch.body, /\/boot\/images\/nixos\/24\.11\/kernel/);
    const seed = await app.inject({ url: "/boot/nixos/bzImage" });
    assert.ok(seed.body.startsWith("kernel-24.11-"), "the seed path follows current too");
  } finally {
    symlinkSync("24.05", join(stateDir, "images", "nixos", "current.new"));
    renameSync(join(stateDir, "images", "nixos", "current.new"), join(stateDir, "images", "nixos", "current"));
  }
});

test("unknown MAC gets the menu; no MAC gets an explanation, not a hang", async () => {
  const menu = await app.inject({ url: "/boot/ipxe/machine.ipxe?mac=52-54-00-aa-bb-cc&platform=pcbios" });
  assert.match(menu.body, /^menu Centra Cloud - Bare-Metal Provisioning$/m);
  const nomac = await app.inject({ url: "/boot/ipxe/machine.ipxe?mac=&platform=pcbios" });
  assert.equal(nomac.statusCode, 200);
  assert.match(nomac.body, /no MAC address/);
  assert.match(nomac.body, /^shell$/m);
});

test("bootloaders and image files: Content-Length, Range, HEAD, ETag", async () => {
  const full = await app.inject({ url: "/boot/ipxe/undionly.kpxe" });
  assert.equal(full.statusCode, 200);
  assert.equal(full.body, "bios-bootloader");
  assert.equal(full.headers["content-length"], "15");
  const etag = String(full.headers.etag);
  assert.match(etag, /^"[0-9a-f]+-f"$/);

  const head = await app.inject({ method: "HEAD", url: "/boot/images/nixos/24.11/kernel" });
  assert.equal(head.statusCode, 200);
  assert.equal(head.headers["content-length"], "4096");
  assert.equal(head.body, "");

  const part = await app.inject({ url: "/boot/images/nixos/24.11/kernel", headers: { range: "bytes=0-12" } });
  assert.equal(part.statusCode, 206);
  assert.equal(part.body, "kernel-24.11-");
  assert.equal(part.headers["content-range"], "bytes 0-12/4096");

  const unsatisfiable = await app.inject({ url: "/boot/images/nixos/24.11/kernel", headers: { range: "bytes=5000-" } });
  assert.equal(unsatisfiable.statusCode, 416);

  const notModified = await app.inject({ url: "/boot/ipxe/undionly.kpxe", headers: { "if-none-match": etag } });
  assert.equal(notModified.statusCode, 304);
  assert.equal(notModified.body, "");

  const versioned = await app.inject({ url: "/boot/nixos/latest/initrd" });
  assert.equal(versioned.body, "initrd-24.05");
});

test("paths that escape are refused, missing files are 404", async () => {
  assert.equal((await app.inject({ url: "/boot/ipxe/escape.efi" })).statusCode, 400, "a symlink pointing out");
  assert.equal((await app.inject({ url: "/boot/ipxe/nope.efi" })).statusCode, 404);
  assert.equal((await app.inject({ url: "/boot/images/nixos/24.11/nope" })).statusCode, 404);
  assert.equal((await app.inject({ url: "/boot/images/nixos/..%2f..%2f/kernel" })).statusCode, 400);
  assert.equal((await app.inject({ url: "/boot/ipxe/a%5cb" })).statusCode, 400);
  assert.equal((await app.inject({ url: "/boot/images/x/current/kernel" })).statusCode, 404);
});

test("/health is 200 while every part is healthy and 503 naming the one that is not", async () => {
  const ok = await app.inject({ url: "/health" });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.json().status, "ok");
  health = { http: { ok: true }, tftp: { ok: false, detail: "not started" } };
  const bad = await app.inject({ url: "/health" });
  assert.equal(bad.statusCode, 503);
  assert.deepEqual(bad.json().failing, ["tftp"]);
  assert.equal(bad.json().parts.tftp.detail, "not started");
  health = { http: { ok: true } };
});

test("extra plugins add routes beside the boot routes", async () => {
  assert.deepEqual((await app.inject({ url: "/api/v1/ping" })).json(), { pong: true });
});

test("query parsing keeps only what it can check", () => {
  const m = machineFromQuery({
    mac: "52-54-00-12-34-56",
    platform: "efi",
    buildarch: "x86_64",
    uuid: "ABCD-1",
    serial: "S N\n1",
    profile: "Bad Name",
  });
  assert.deepEqual(m, {
    mac: "52:54:00:12:34:56",
    platform: "efi",
    buildarch: "x86_64",
    uuid: "abcd-1",
    serial: "S N1",
  });
  assert.equal(typeof machineFromQuery({}), "string");
  assert.equal(
    (machineFromQuery({ mac: "52:54:00:12:34:56", platform: "linux" }) as { platform: string }).platform,
    "pcbios",
  );
});

test("a Host header that is not host[:port] falls back to the configured address", () => {
  assert.equal(baseUrlFor("10.0.100.10", config), "http://10.0.100.10");
  assert.equal(baseUrlFor("evil\r\nchain x", config), "http://10.0.100.10");
  assert.equal(baseUrlFor(undefined, { ...config, http: { ...config.http, port: 8080 } }), "http://10.0.100.10:8080");
});

test("a resolver that throws gives a 500 (iPXE retries), not a crash", async () => {
  const failing = await createHttpApp({
    config,
    logger: silentLogger,
    resolver: { resolve: async () => Promise.reject(new Error("store is down")) },
    health: () => ({}),
  });
  try {
    const response = await failing.inject({ url: "/boot/ipxe/machine.ipxe?mac=52-54-00-12-34-56" });
    assert.equal(response.statusCode, 500);
    assert.doesNotMatch(response.body, /store is down/, "internals stay in the log");
  } finally {
    await failing.close();
  }
});

test("a request body over http.bodyLimit is refused with 413 before any route sees it", async () => {
  let seen = 0;
  const small = await createHttpApp({
    config: parseConfig(`stateDir: ${stateDir}\nhttp: { bodyLimit: 1024 }\n`),
    logger: silentLogger,
    resolver: createConfigResolver(createFileImageCatalog(stateDir)),
    health: () => health,
    extraPlugins: [async (api) => void api.post("/api/v1/echo", async () => ({ seen: ++seen }))],
  });
  try {
    const post = (bytes: number) =>
      small.inject({
        method: "POST",
        url: "/api/v1/echo",
        headers: { "content-type": "application/json" },
        payload: JSON.stringify({ pad: "x".repeat(bytes) }),
      });
    assert.equal((await post(100)).statusCode, 200);
    assert.equal((await post(4096)).statusCode, 413);
    assert.equal(seen, 1);
  } finally {
    await small.close();
  }
});

/** A logger that keeps its lines (parsed), to count what a flood of requests writes. */
function recordingLogger(): { logger: Logger; lines: { msg: string; heldBack?: number }[] } {
  const lines: { msg: string; heldBack?: number }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

test("a scanner's refused paths are one warn line per interval, not one per request (the fuzz campaign got 13,173)", async () => {
  const { logger, lines } = recordingLogger();
  const scanned = await createHttpApp({
    config,
    logger,
    resolver: createConfigResolver(createFileImageCatalog(stateDir)),
    health: () => health,
  });
  try {
    for (let i = 0; i < 300; i++) {
      // Refused on the raw URL, and refused by the path check behind a symlink out of the root.
      assert.equal((await scanned.inject({ url: `/boot/ipxe/%2e%2e%2f${i}` })).statusCode, 400);
      assert.equal((await scanned.inject({ url: "/boot/ipxe/escape.efi" })).statusCode, 400);
    }
    const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
    assert.equal(count("refused request path"), 1, JSON.stringify(lines.slice(0, 5)));
    assert.equal(count("refused a path outside the served root"), 1, JSON.stringify(lines.slice(0, 5)));
    assert.equal(lines.find((l) => l.msg === "refused request path")?.heldBack, 0, "the first line holds nothing back");
  } finally {
    await scanned.close();
  }
});

test("http.tls.plainHttp: bootloaders keeps scripts and images off plain HTTP, bootloaders and /health stay", async () => {
  const httpsOnly = await createHttpApp({
    config: parseConfig(`
stateDir: ${stateDir}
http: { tls: { cert: /nonexistent/c.pem, key: /nonexistent/k.pem, plainHttp: bootloaders } }
`),
    logger: silentLogger,
    resolver: createConfigResolver(createFileImageCatalog(stateDir)),
    health: () => ({ http: { ok: true } }),
  });
  try {
    for (const url of [
      "/boot/ipxe/boot.ipxe",
      "/boot/ipxe/machine.ipxe?mac=52-54-00-12-34-56",
      "/boot/images/nixos/current/kernel",
      "/boot/nixos/bzImage",
    ]) {
      const response = await httpsOnly.inject({ url });
      assert.equal(response.statusCode, 403, url);
      assert.match(response.body, /over HTTPS only/);
    }
    assert.equal((await httpsOnly.inject({ url: "/boot/ipxe/undionly.kpxe" })).body, "bios-bootloader");
    assert.equal((await httpsOnly.inject({ url: "/health" })).statusCode, 200);
    // The default serves everything over plain HTTP too.
    assert.equal((await app.inject({ url: "/boot/ipxe/boot.ipxe" })).statusCode, 200);
  } finally {
    await httpsOnly.close();
  }
});

test("baseUrlFor: the scheme the request came by, the TLS port when there is no usable Host", () => {
  const tls = parseConfig("serverAddress: 10.0.100.10\nhttp: { tls: { cert: c, key: k, port: 8443 } }");
  assert.equal(baseUrlFor("10.0.100.10:8443", tls, "https"), "https://10.0.100.10:8443");
  assert.equal(baseUrlFor(undefined, tls, "https"), "https://10.0.100.10:8443");
  assert.equal(baseUrlFor(undefined, tls), "http://10.0.100.10");
});
