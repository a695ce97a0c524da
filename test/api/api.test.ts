import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { parseConfig } from "../../src/config/load.js";
import { createHttpApp } from "../../src/http/app.js";
import { silentLogger } from "../../src/log.js";
import { createApiPlugin } from "../../src/api/plugin.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import type { NodeEvent, NodeRecord } from "../../src/store/store.js";

/**
 * The REST API and the boot decision together, in-process (app.inject) over the HTTP app the
 * daemon serves, with a real SQLite file; the SSE stream over a real socket on port 0.
 */

const stateDir = mkdtempSync(join(tmpdir(), "api-"));
let store: SqliteStore;
let part: ProvisioningPart;
let app: FastifyInstance;
let admin: string;
let revoked: string;

const CONFIG = `
stateDir: ${stateDir}
serverAddress: 10.0.100.10
provisioning: { timeout: 30m }
api: { maxEventStreams: 2 }
nodes:
  "52:54:00:12:34:56": { profile: control-plane, hostname: control-plane-01, ipAddress: 10.0.100.50 }
`;

before(async () => {
  mkdirSync(join(stateDir, "images", "nixos", "24.11"), { recursive: true });
  writeFileSync(join(stateDir, "images", "nixos", "24.11", "kernel"), "kernel");
  writeFileSync(join(stateDir, "images", "nixos", "24.11", "initrd"), "initrd");
  symlinkSync("24.11", join(stateDir, "images", "nixos", "current"));
  store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  await store.images.put({
    name: "nixos",
    arch: "x86_64",
    version: "24.11",
    files: {},
    cmdline: "init=/nix/store/x/init",
    addedAt: "2026-11-25T00:00:00.000Z",
  });
  const config = parseConfig(CONFIG);
  // In-process, every request comes from 127.0.0.1: that is the machine's address here.
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
  const old = await createApiToken(store, "old laptop");
  await store.apiTokens.revoke(old.record.id, new Date().toISOString());
  revoked = old.token;
});

after(async () => {
  await app?.close();
  await part?.service.stop();
  await store?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

type Method = "GET" | "POST" | "PATCH" | "DELETE";

/** An API request; a read carries the admin token unless it says `anonymous` (every route needs one). */
async function call(
  method: Method,
  url: string,
  options: { token?: string; anonymous?: boolean; body?: unknown; headers?: Record<string, string> } = {},
) {
  const token = options.token ?? (method === "GET" && !options.anonymous ? admin : undefined);
  const response = await app.inject({
    method,
    url,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers },
    ...(options.body !== undefined ? { payload: options.body as string | object } : {}),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    json: () => response.json() as Record<string, unknown>,
    text: response.body,
  };
}

const machineScript = (mac: string, platform = "pcbios") =>
  app.inject({
    method: "GET",
    url: `/boot/ipxe/machine.ipxe?mac=${mac.replace(/:/g, "-")}&buildarch=x86_64&platform=${platform}&uuid=&serial=`,
    headers: { host: "10.0.100.10" },
  });

test("every route needs a token, reads too: 401 missing or wrong, 403 revoked; the callback and /health stay open", async () => {
  assert.equal((await call("GET", "/api/v1/nodes")).status, 200);
  for (const url of [
    "/api/v1/nodes?state=provisioning",
    "/api/v1/nodes/control-plane-01",
    "/api/v1/events?after=0",
    "/api/v1/images",
    "/api/v1/openapi.json",
    "/api/v1/nope",
  ]) {
    const anonymous = await call("GET", url, { anonymous: true });
    assert.equal(anonymous.status, 401, url);
    assert.match(String(anonymous.headers["www-authenticate"]), /^Bearer/);
  }
  assert.equal((await call("GET", "/api/v1/nodes", { token: revoked })).status, 403);
  assert.equal(
    (await call("POST", "/api/v1/nodes/callback?mac=52:54:00:12:34:56")).json().error,
    "CALLBACK_REJECTED",
    "the callback answers for its own token",
  );
  assert.equal((await app.inject({ url: "/health" })).statusCode, 200);
  const body = { mac: "52:54:00:00:00:01", profile: "worker" };
  const missing = await call("POST", "/api/v1/nodes", { body });
  assert.equal(missing.status, 401);
  assert.match(String(missing.headers["www-authenticate"]), /^Bearer/);
  assert.match(String(missing.json().message), /token create/);
  assert.equal((await call("POST", "/api/v1/nodes", { body, token: "cpxe_00000000_wrong" })).status, 401);
  assert.equal(
    (await call("POST", "/api/v1/nodes", { body, headers: { authorization: "Basic b3BzOm9wcw==" } })).status,
    401,
  );
  const gone = await call("POST", "/api/v1/nodes", { body, token: revoked });
  assert.equal(gone.status, 403);
  assert.match(String(gone.json().message), /revoked/);
  for (const [method, url] of [
    ["PATCH", "/api/v1/nodes/control-plane-01"],
    ["DELETE", "/api/v1/nodes/control-plane-01"],
    ["POST", "/api/v1/nodes/control-plane-01/provision"],
    ["POST", "/api/v1/nodes/control-plane-01/reprovision"],
    ["POST", "/api/v1/nodes/control-plane-01/retire"],
    ["POST", "/api/v1/nodes/control-plane-01/reactivate"],
    // A stranger adopting its own MAC onto a known node (issue 10: the network never edits the inventory).
    ["POST", "/api/v1/nodes/control-plane-01/macs"],
  ] as const) {
    assert.equal((await call(method, url, { body: {} })).status, 401, `${method} ${url}`);
  }
  assert.equal(Array.isArray((await call("GET", "/api/v1/nodes?state=discovered")).json().nodes), true);
});

test("bad input is a 400 naming each field and why; clashes are 409s", async () => {
  const bad = await call("POST", "/api/v1/nodes", {
    token: admin,
    body: { macs: ["zz"], profile: "database", ipAddress: "10.0.100.150" },
  });
  assert.equal(bad.status, 400);
  const problems = bad.json().problems as { field: string; message: string }[];
  assert.deepEqual(
    problems.map((p) => p.field),
    ["macs[0]", "profile", "ipAddress"],
  );
  assert.match(problems[1]!.message, /unknown profile "database" \(defined: control-plane, worker, all-in-one\)/);
  assert.equal(
    (await call("POST", "/api/v1/nodes", { token: admin, body: "not json", headers: { "content-type": "text/plain" } }))
      .status,
    400,
  );
  assert.equal((await call("GET", "/api/v1/nodes?state=asleep")).status, 400);
  assert.equal(Array.isArray((await call("GET", "/api/v1/events?limit=0")).json().problems), true);
  const clash = await call("POST", "/api/v1/nodes", {
    token: admin,
    body: { mac: "52:54:00:00:00:02", ipAddress: "10.0.100.50" },
  });
  assert.equal(clash.status, 409);
  assert.equal(clash.json().field, "ipAddress");
  const owned = await call("PATCH", "/api/v1/nodes/control-plane-01", { token: admin, body: { hostname: "renamed" } });
  assert.equal(owned.status, 409);
  assert.match(String(owned.json().message), /config file/);
  assert.equal((await call("GET", "/api/v1/nodes/no-such-node")).status, 404);
});

test("a node added through the API gets its reservation and boot script at once", async () => {
  const created = await call("POST", "/api/v1/nodes", {
    token: admin,
    body: {
      mac: "52-54-00-00-00-10",
      profile: "worker",
      hostname: "worker-10",
      ipAddress: "10.0.100.60",
      labels: { rack: "b2" },
    },
  });
  assert.equal(created.status, 201);
  const node = created.json() as unknown as NodeRecord;
  assert.equal(node.state, "ready");
  assert.equal(created.headers.location, `/api/v1/nodes/${node.id}`);
  assert.deepEqual(part.lookupNode("52:54:00:00:00:10"), { ipAddress: "10.0.100.60", hostname: "worker-10" });
  const script = (await machineScript("52:54:00:00:00:10")).body;
  assert.match(
    script,
    /kernel http:\/\/10\.0\.100\.10\/boot\/images\/nixos\/24\.11\/kernel .*centra\.hostname=worker-10/,
  );
  assert.doesNotMatch(script, /centra\.token=/, "ready boots the image as the seed did, without an install token");
  assert.equal(((await call("GET", "/api/v1/nodes?label=rack=b2")).json().nodes as NodeRecord[]).length, 1);
  assert.equal((await call("GET", "/api/v1/nodes/worker-10")).json().id, node.id);
  const patched = await call("PATCH", `/api/v1/nodes/${node.id}`, {
    token: admin,
    body: { hostname: "worker-11", ipAddress: null },
  });
  assert.equal(patched.status, 200);
  assert.deepEqual(part.lookupNode("52:54:00:00:00:10"), { hostname: "worker-11" });
  assert.equal((await call("DELETE", "/api/v1/nodes/worker-11", { token: admin })).status, 200);
  assert.equal(part.lookupNode("52:54:00:00:00:10"), undefined);
  const events = (await call("GET", `/api/v1/events?node=${node.id}`)).json().events as NodeEvent[];
  assert.deepEqual(
    events.map((e) => e.kind),
    ["created", "updated", "removed"],
    "a removed node's history is kept",
  );
});

test("provision → install script with a callback token → callback → local disk, and the token is single use", async () => {
  const provisioned = await call("POST", "/api/v1/nodes/52:54:00:12:34:56/provision", { token: admin });
  assert.equal(provisioned.status, 200);
  assert.equal(provisioned.json().state, "provisioning");
  assert.equal(
    (await call("POST", "/api/v1/nodes/52:54:00:12:34:56/provision", { token: admin })).status,
    409,
    "already provisioning",
  );

  const install = (await machineScript("52:54:00:12:34:56")).body;
  assert.match(install, /centra\.api=http:\/\/10\.0\.100\.10\/api\/v1/);
  const token = /centra\.token=([A-Za-z0-9_-]+)/.exec(install)?.[1];
  assert.ok(token, install);

  const noToken = await call("POST", "/api/v1/nodes/callback?mac=52:54:00:12:34:56");
  assert.equal(noToken.status, 401);
  assert.equal((await call("POST", "/api/v1/nodes/callback?mac=52:54:00:12:34:56&token=forged")).status, 403);

  // What the lab's busybox wget sends: the same fields in the query and as a form body.
  const done = await call("POST", `/api/v1/nodes/callback?mac=52:54:00:12:34:56&token=${token}`, {
    body: `mac=52:54:00:12:34:56&token=${token}`,
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.equal(done.status, 200, done.text);
  assert.deepEqual(done.json().node, { id: provisioned.json().id, state: "provisioned" });

  const reused = await call("POST", `/api/v1/nodes/callback?mac=52:54:00:12:34:56`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(reused.status, 403);
  assert.equal(reused.json().reason, "used");

  const bios = (await machineScript("52:54:00:12:34:56")).body;
  assert.match(bios, /sanboot --no-describe --drive 0x80/);
  assert.doesNotMatch(bios, /kernel /, "an installed machine downloads no kernel");
  const efi = (await machineScript("52:54:00:12:34:56", "efi")).body;
  assert.match(efi, /^exit \|\|$/m);

  const transitions = (
    (await call("GET", "/api/v1/nodes/control-plane-01/events?kind=transition")).json().events as NodeEvent[]
  ).map((e) => `${e.fromState}->${e.toState}`);
  assert.deepEqual(transitions.slice(-2), ["ready->provisioning", "provisioning->provisioned"]);
});

test("a callback by GET works for wget builds that cannot POST; retire then boots nothing", async () => {
  const created = (
    await call("POST", "/api/v1/nodes", { token: admin, body: { mac: "52:54:00:00:00:20", profile: "worker" } })
  ).json();
  await call("POST", `/api/v1/nodes/${created.id}/provision`, { token: admin });
  const token = /centra\.token=([A-Za-z0-9_-]+)/.exec((await machineScript("52:54:00:00:00:20")).body)![1];
  const failed = await call(
    "GET",
    `/api/v1/nodes/callback?mac=52-54-00-00-00-20&token=${token}&status=failed&message=no+disk`,
  );
  assert.equal(failed.json().node && (failed.json().node as { state: string }).state, "failed");
  assert.match(
    (await machineScript("52:54:00:00:00:20")).body,
    /not booting from the network: provisioning of node .* failed/,
  );
  assert.equal((await call("POST", `/api/v1/nodes/${created.id}/retire`, { token: admin })).json().state, "retired");
  assert.match((await machineScript("52:54:00:00:00:20")).body, /retired/);
});

test("a node pinned to a missing image version is told why and gets no token", async () => {
  const node = (
    await call("POST", "/api/v1/nodes", {
      token: admin,
      body: { mac: "52:54:00:00:00:50", profile: "worker", imageVersion: "9.9" },
    })
  ).json();
  await call("POST", `/api/v1/nodes/${node.id}/provision`, { token: admin });
  const script = (await machineScript("52:54:00:00:00:50")).body;
  assert.match(script, /cannot boot: image nixos version 9\.9 .* is not installed/);
  assert.doesNotMatch(script, /centra\.token=/);
  assert.equal(
    ((await call("GET", `/api/v1/events?node=${node.id}&kind=install-boot`)).json().events as NodeEvent[]).length,
    0,
  );
  assert.equal(
    (await call("PATCH", `/api/v1/nodes/${node.id}`, { token: admin, body: { imageVersion: null } })).status,
    200,
  );
  assert.match((await machineScript("52:54:00:00:00:50")).body, /images\/nixos\/24\.11\/kernel .*centra\.token=/);
});

test("an unknown machine that PXE-boots is discovered and gets the menu", async () => {
  const script = (await machineScript("52:54:00:00:00:30")).body;
  assert.match(script, /Centra Cloud - Bare-Metal Provisioning/);
  const node = (await call("GET", "/api/v1/nodes/52:54:00:00:00:30")).json();
  assert.equal(node.state, "discovered");
  part.dhcpObserver({ mac: "52:54:00:00:00:31", firmware: "efi-x64", via: "dhcp" });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal((await call("GET", "/api/v1/nodes/52:54:00:00:00:31")).json().firmware, "efi-x64");
});

test("images, and an OpenAPI document that describes every route", async () => {
  const images = (await call("GET", "/api/v1/images")).json().images as {
    name: string;
    version: string;
    current: boolean;
  }[];
  assert.deepEqual(
    images.map((i) => [i.name, i.version, i.current]),
    [["nixos", "24.11", true]],
  );
  const doc = (await call("GET", "/api/v1/openapi.json")).json();
  assert.equal(doc.openapi, "3.1.0");
  const paths = Object.keys(doc.paths as object);
  for (const path of [
    "/nodes",
    "/nodes/{ref}",
    "/nodes/{ref}/macs",
    "/nodes/{ref}/provision",
    "/nodes/{ref}/reprovision",
    "/nodes/{ref}/retire",
    "/nodes/callback",
    "/events",
    "/events/stream",
    "/images",
  ]) {
    assert.ok(paths.includes(path), path);
  }
  assert.equal((await call("GET", "/api/v1/nope")).status, 404);
});

test("the event stream replays from Last-Event-ID and then goes live (SSE over a real socket)", {
  timeout: 60_000,
}, async () => {
  const address = await app.listen({ port: 0, host: "127.0.0.1" });
  const port = new URL(address).port;
  const last = ((await call("GET", "/api/v1/events?limit=1")).json().events as NodeEvent[])[0]!;
  const received: NodeEvent[] = [];
  let buffer = "";
  const response = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/api/v1/events/stream",
        headers: { "last-event-id": String(last.seq - 1), authorization: `Bearer ${admin}` },
      },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers["content-type"]), /^text\/event-stream/);
  const arrived = new Promise<void>((resolve) => {
    response.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").find((line) => line.startsWith("data: "));
        if (data) received.push(JSON.parse(data.slice(6)) as NodeEvent);
        if (received.length >= 2) resolve();
      }
    });
  });
  await call("POST", "/api/v1/nodes", { token: admin, body: { mac: "52:54:00:00:00:40" } });
  await arrived;
  response.destroy();
  assert.equal(received[0]!.seq, last.seq, "the replay starts right after Last-Event-ID");
  assert.equal(received[1]!.kind, "created");
  assert.deepEqual(received[1]!.details.macs, ["52:54:00:00:00:40"]);
});

/** Open an SSE stream over a real socket; resolves with the response once headers arrived. */
async function openStream(port: string, headers: Record<string, string>) {
  return new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/api/v1/events/stream",
        headers: { authorization: `Bearer ${admin}`, ...headers },
      },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
}

test("event history is paged: at most a page per read with a cursor; SSE replays from 0 page by page; streams are capped", {
  timeout: 60_000,
}, async () => {
  for (let i = 0; i < 620; i++)
    await store.events.append({
      nodeId: "n-history",
      kind: "test-history",
      at: new Date().toISOString(),
      details: { i },
    });
  const everything = await call("GET", "/api/v1/events?after=0");
  const page = everything.json() as { events: NodeEvent[]; next: number; more: boolean };
  assert.equal(page.events.length, 500, "a read without a limit is one page, not the whole history");
  assert.equal(page.more, true);
  assert.equal(page.next, page.events.at(-1)!.seq);
  assert.equal((await call("GET", "/api/v1/events?after=0&limit=501")).status, 400);
  const small = (await call("GET", "/api/v1/events?after=0&limit=2")).json() as { events: NodeEvent[]; next: number };
  const following = (await call("GET", `/api/v1/events?after=${small.next}&limit=2`)).json() as { events: NodeEvent[] };
  assert.equal(following.events[0]!.seq > small.events[1]!.seq, true, "the cursor continues where the page ended");
  let seen = 0;
  for (let after = 0, more = true; more; ) {
    const next = (await call("GET", `/api/v1/events?after=${after}&kind=test-history`)).json() as {
      events: NodeEvent[];
      next: number;
      more: boolean;
    };
    seen += next.events.length;
    ({ next: after, more } = next);
  }
  assert.equal(seen, 620, "following the cursor reads the whole history");

  const address = app.server.listening
    ? `http://127.0.0.1:${(app.server.address() as import("node:net").AddressInfo).port}`
    : await app.listen({ port: 0, host: "127.0.0.1" });
  const port = new URL(address).port;
  const first = await openStream(port, { "last-event-id": "0" });
  let replayed = 0;
  let buffer = "";
  const total = (await call("GET", "/api/v1/events?limit=1")).json().events as NodeEvent[];
  const done = new Promise<void>((resolve) => {
    first.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const id = /^id: (\d+)$/m.exec(block)?.[1];
        if (id !== undefined) {
          replayed++;
          if (Number(id) === total[0]!.seq) resolve();
        }
      }
    });
  });
  await done;
  assert.ok(replayed >= 620, `the whole history replays over more than one page (${replayed})`);
  const second = await openStream(port, {});
  assert.equal(second.statusCode, 200);
  const third = await openStream(port, {});
  assert.equal(third.statusCode, 503, "api.maxEventStreams: 2");
  let body = "";
  for await (const chunk of third) body += String(chunk);
  assert.match(body, /api\.maxEventStreams/);
  first.destroy();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const fourth = await openStream(port, {});
  assert.equal(fourth.statusCode, 200, "a closed stream frees its place");
  second.destroy();
  fourth.destroy();
});

test("nodes adopt: POST /nodes/:ref/macs adds a MAC, with a token", async () => {
  const node = (
    await call("POST", "/api/v1/nodes", {
      token: admin,
      body: { mac: "52:54:00:00:00:70", profile: "worker", uuid: "4c4c4544-0000-1000-8000-000000000070" },
    })
  ).json();
  assert.equal(
    (await call("POST", `/api/v1/nodes/${node.id}/macs`, { body: { mac: "52:54:00:00:00:71" } })).status,
    401,
  );
  assert.equal((await call("POST", `/api/v1/nodes/${node.id}/macs`, { token: admin, body: {} })).status, 400);
  const adopted = await call("POST", `/api/v1/nodes/${node.id}/macs`, {
    token: admin,
    body: { mac: "52-54-00-00-00-71" },
  });
  assert.equal(adopted.status, 200, adopted.text);
  assert.deepEqual(adopted.json().macs, ["52:54:00:00:00:70", "52:54:00:00:00:71"]);
  assert.equal(
    (await call("POST", `/api/v1/nodes/${node.id}/macs`, { token: admin, body: { mac: "52:54:00:12:34:56" } })).status,
    409,
  );
});

test("a node's recorded console: text/plain from stateDir/consoles, 404 when none was recorded, a token needed", async () => {
  const created = await call("POST", "/api/v1/nodes", {
    token: admin,
    body: { macs: ["52:54:00:c0:50:1e"], profile: "worker" },
  });
  assert.equal(created.status, 201, created.text);
  const id = created.json().id as string;
  const none = await call("GET", `/api/v1/nodes/${id}/console`);
  assert.equal(none.status, 404);
  assert.equal(none.json().error, "NO_CONSOLE");
  mkdirSync(join(stateDir, "consoles"), { recursive: true });
  writeFileSync(
    join(stateDir, "consoles", `${id}.log`),
    "Linux version 6.1\r\ncentra-lab: callback answered HTTP 500\r\n",
  );
  const recorded = await call("GET", `/api/v1/nodes/${id}/console`);
  assert.equal(recorded.status, 200);
  assert.match(String(recorded.headers["content-type"]), /^text\/plain/);
  assert.match(recorded.text, /callback answered HTTP 500/);
  assert.equal((await call("GET", `/api/v1/nodes/${id}/console`, { anonymous: true })).status, 401);
  assert.equal((await call("GET", "/api/v1/nodes/52:54:00:c0:50:ff/console")).status, 404);
  const doc = (await call("GET", "/api/v1/openapi.json")).json();
  assert.ok(Object.keys(doc.paths as object).includes("/nodes/{ref}/console"));
});
