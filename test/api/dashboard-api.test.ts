import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { LeaseRecord } from "../../src/contracts/lease-store.js";
import {
  buildDashboardInto,
  type DashboardServer,
  seedNodes,
  startDashboardServer,
} from "../support/dashboard-server.js";

/**
 * What the dashboard reads and serves, over a real socket: the nodes page and search, the fleet
 * summary, leases, the image switch, who the caller is; and, as a stranger with no token would try
 * it, that the bundle carries no data and no path under /ui/ reaches a file outside the bundle.
 */

const SECRET_HOST = "node-00042"; // a seeded hostname: it must appear in no unauthenticated answer
let dir: string;
let uiDir: string;
let server: DashboardServer;
const now = Date.now();
const leases: LeaseRecord[] = [
  { address: "10.0.100.101", mac: "52:54:01:00:00:01", expiresAt: now + 3600_000, state: "bound", updatedAt: now },
  { address: "10.0.100.102", mac: "52:54:01:00:00:02", expiresAt: now - 1000, state: "bound", updatedAt: now },
  { address: "10.0.100.103", mac: "aa:bb:cc:00:00:03", expiresAt: now + 3600_000, state: "bound", updatedAt: now },
];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "dashboard-api-"));
  uiDir = join(dir, "ui");
  buildDashboardInto(uiDir);
  server = await startDashboardServer({
    stateDir: join(dir, "state"),
    uiDir,
    seed: (store) => seedNodes(store, 120, 7),
    leases: async () => leases,
  });
});

after(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, init: { token?: string | null; method?: string; body?: unknown } = {}) {
  const token = init.token === undefined ? server.token : init.token;
  const response = await fetch(`${server.url}${path}`, {
    method: init.method ?? "GET",
    redirect: "manual",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

/** A request with the path exactly as written: fetch and URL would resolve `..` before sending. */
function raw(path: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("latin1");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("GET /nodes pages, searches and counts server-side: offset, limit, q by MAC (either spelling) or hostname", async () => {
  const all = (await call("/api/v1/nodes")).json();
  assert.equal(all.nodes.length, 120, "no limit: every node, as the CLI reads it");
  assert.equal(all.total, 120);
  const page = (await call("/api/v1/nodes?offset=100&limit=50")).json();
  assert.equal(page.nodes.length, 20);
  assert.equal(page.total, 120);
  assert.equal(page.offset, 100);
  assert.equal(page.nodes[0].hostname, "node-00100");
  const byMac = (await call("/api/v1/nodes?q=52-54-01-00-00-2A&limit=50")).json();
  assert.deepEqual(
    byMac.nodes.map((n: { hostname: string }) => n.hostname),
    [SECRET_HOST],
  );
  const byHost = (await call("/api/v1/nodes?q=NODE-0001&limit=5")).json();
  assert.equal(byHost.total, 10, "node-00010 … node-00019");
  assert.equal(byHost.nodes.length, 5);
  const filtered = (await call("/api/v1/nodes?state=provisioning&label=rack=r3&limit=50")).json();
  assert.deepEqual(
    filtered.nodes.map((n: { hostname: string }) => n.hostname),
    ["node-00003"],
  );
  for (const bad of ["limit=1001", "limit=-1", "offset=x", "offset=-5"]) {
    const answer = await call(`/api/v1/nodes?${bad}`);
    assert.equal(answer.status, 400, bad);
    assert.match(answer.text, /must be a whole number/);
  }
});

test("GET /fleet counts every state and lists the boots in progress; GET /leases shows active ones, all=1 the rest", async () => {
  const fleet = (await call("/api/v1/fleet")).json();
  assert.equal(fleet.total, 120);
  assert.deepEqual(fleet.byState, {
    discovered: 0,
    ready: 113,
    provisioning: 7,
    provisioned: 0,
    failed: 0,
    retired: 0,
  });
  assert.equal(fleet.byProfile.worker, 120);
  assert.equal(fleet.provisioningTotal, 7);
  assert.equal(fleet.provisioning.length, 7);

  const active = (await call("/api/v1/leases")).json();
  assert.deepEqual(
    active.leases.map((l: { address: string; status: string }) => `${l.address} ${l.status}`),
    ["10.0.100.101 active", "10.0.100.103 active"],
  );
  const every = (await call("/api/v1/leases?all=1")).json();
  assert.equal(every.leases.length, 3);
  assert.match(every.leases[1].expiresAt, /^\d{4}-\d\d-\d\dT/);
});

test("whoami (w-iam's) names the caller's role; the image switch is an admin's, checked, and takes effect", async () => {
  const viewerIs = (await call("/api/v1/whoami", { token: server.viewerToken })).json();
  assert.deepEqual({ name: viewerIs.actor.name, role: viewerIs.role }, { name: "dashboard-viewer", role: "viewer" });
  assert.equal((await call("/api/v1/whoami")).json().role, "admin");

  const body = { version: "24.11" };
  const viewer = await call("/api/v1/images/nixos/current", { method: "PUT", body, token: server.viewerToken });
  assert.equal(viewer.status, 403);
  assert.equal((await call("/api/v1/images/nixos/current", { method: "PUT", body: {} })).status, 400);
  assert.equal(
    (await call("/api/v1/images/nixos/current", { method: "PUT", body: { version: "../24.11" } })).status,
    400,
  );
  assert.equal((await call("/api/v1/images/nixos/current", { method: "PUT", body: { version: "9.9" } })).status, 404);
  const switched = await call("/api/v1/images/nixos/current", { method: "PUT", body });
  assert.equal(switched.status, 200, switched.text);
  const current = (await call("/api/v1/images")).json().images.filter((i: { current: boolean }) => i.current);
  assert.deepEqual(
    current.map((i: { version: string }) => i.version),
    ["24.11"],
  );
  // And back: the rollback is the same switch.
  assert.equal((await call("/api/v1/images/nixos/current", { method: "PUT", body: { version: "24.05" } })).status, 200);
});

test("a stranger without a token: every new route is closed; the dashboard is served, strictly, but holds no data", async () => {
  for (const [method, path] of [
    ["GET", "/api/v1/fleet"],
    ["GET", "/api/v1/leases?all=1"],
    ["GET", "/api/v1/whoami"],
    ["GET", "/api/v1/nodes?q=node&limit=10"],
    ["PUT", "/api/v1/images/nixos/current"],
  ] as const) {
    const answer = await call(path, {
      token: null,
      method,
      ...(method === "PUT" ? { body: { version: "24.11" } } : {}),
    });
    assert.equal(answer.status, 401, `${method} ${path}`);
    assert.ok(!answer.text.includes(SECRET_HOST));
  }

  const root = await call("/", { token: null });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get("location"), "/ui/");
  const index = await call("/ui/", { token: null });
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type") ?? "", /^text\/html/);
  const csp = index.headers.get("content-security-policy") ?? "";
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"])
    assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
  assert.ok(!/unsafe-inline|unsafe-eval|https?:/.test(csp), `CSP allows nothing foreign: ${csp}`);
  assert.equal(index.headers.get("x-content-type-options"), "nosniff");
  assert.equal(index.headers.get("cache-control"), "no-cache");
  assert.ok(!/<script>|<style>|https?:\/\//.test(index.text), "no inline script or style, no foreign URL");

  // Each asset index.html names is served with a long cache; together they hold no inventory data.
  const assets = [...index.text.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1]!);
  assert.equal(assets.length, 2);
  for (const asset of assets) {
    const answer = await call(`/ui/${asset}`, { token: null });
    assert.equal(answer.status, 200, asset);
    assert.match(answer.headers.get("cache-control") ?? "", /immutable/);
    assert.equal(answer.text, readFileSync(join(uiDir, asset), "utf8"));
    assert.ok(!answer.text.includes(SECRET_HOST) && !answer.text.includes("52:54:01:00:00:2a"));
    assert.ok(!/https?:\/\/(?!www\.w3\.org)[a-z]/i.test(answer.text.replace(/\/\/#.*$/gm, "")), `${asset}: no CDN URL`);
    const etag = answer.headers.get("etag")!;
    const again = await fetch(`${server.url}/ui/${asset}`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
  }

  // Paths that try to climb out of the bundle, or to name files beside it, get nothing.
  for (const path of [
    "/ui/../api/v1/nodes",
    "/ui/assets/../../../../etc/passwd",
    "/ui/assets/..%2f..%2f..%2fpackage.json",
    "/ui/%2e%2e/%2e%2e/etc/passwd",
    "/ui/assets/%2e%2e",
    "/ui//etc/passwd",
    "/ui/assets//etc/passwd",
    "/ui/index.html",
    "/ui/assets/",
    "/ui/assets/.",
    "/ui/assets/app.js",
    "/ui/assets/..\\..\\package.json",
    "/ui/package.json",
    "/ui/assets/%00",
  ]) {
    const answer = await raw(path);
    assert.ok(answer.status === 400 || answer.status === 404, `${path}: ${answer.status}`);
    assert.ok(!/root:|"name": "centra-pxe"|node-0/.test(answer.body), `${path} leaked: ${answer.body.slice(0, 200)}`);
  }
});
