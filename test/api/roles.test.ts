import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { createApiPlugin } from "../../src/api/plugin.js";
import { parseConfig } from "../../src/config/load.js";
import { ROLES, type Role, roleAllows } from "../../src/config/roles.js";
import { createHttpApp } from "../../src/http/app.js";
import { silentLogger } from "../../src/log.js";
import { createProvisioning, type ProvisioningPart } from "../../src/provisioning/index.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite-store.js";
import type { AuditRecord, NodeRecord } from "../../src/store/store.js";

/**
 * Each role against each route, walked from the OpenAPI document the API serves (so a new route
 * is in the table the moment it is described, and one that is not described fails here), over a
 * real loopback socket; every change it makes must leave its audit record. Then label scopes.
 */

const stateDir = mkdtempSync(join(tmpdir(), "roles-"));
let store: SqliteStore;
let part: ProvisioningPart;
let app: FastifyInstance;
let base: string;
const tokens = {} as Record<Role, string>;
const tokenIds = {} as Record<Role, string>;
let scopedOperator: string;
let scopedViewer: string;
let expired: string;
/** Error lines the API logged (a route without a declared role is one). */
const errors: string[] = [];

before(async () => {
  store = openSqliteStore(join(stateDir, "centra-pxe.db"));
  const config = parseConfig(`
stateDir: ${stateDir}
serverAddress: 127.0.0.1
dhcp: { mode: off }
`);
  part = createProvisioning({ config, store, logger: silentLogger, addressOf: () => "127.0.0.1" });
  await part.service.start();
  const logger = pino(
    { level: "error" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        errors.push(chunk.toString());
        done();
      },
    }),
  );
  const api = createApiPlugin({
    inventory: part.inventory,
    lifecycle: part.lifecycle,
    onEvent: part.onEvent,
    store,
    logger,
  });
  app = await createHttpApp({
    config,
    logger: silentLogger,
    resolver: part.resolver,
    health: () => ({}),
    extraPlugins: [api],
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  for (const role of ROLES) {
    const created = await createApiToken(store, `${role}-table`, { role });
    tokens[role] = created.token;
    tokenIds[role] = created.record.id;
  }
  scopedOperator = (await createApiToken(store, "a1 on-call", { role: "operator", scope: { rack: "a1" } })).token;
  scopedViewer = (await createApiToken(store, "a1 wall", { role: "viewer", scope: { rack: "a1" } })).token;
  expired = (await createApiToken(store, "old", { role: "admin", expiresAt: new Date(Date.now() - 1000) })).token;
});

after(async () => {
  await app?.close();
  await part?.service.stop();
  await store?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

/** One request over the socket; an event stream is answered by its status line and headers, then dropped. */
async function call(method: string, path: string, token?: string, body?: unknown): Promise<Answer> {
  const abort = new AbortController();
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: abort.signal,
  });
  if (response.headers.get("content-type")?.startsWith("text/event-stream")) {
    abort.abort();
    return { status: response.status, headers: response.headers, json: {} };
  }
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

const mac = () =>
  `52:54:00:${randomBytes(3)
    .toString("hex")
    .replace(/(..)(?=.)/g, "$1:")}`;

/** A fresh node (made by the admin), so one route's change does not decide another's answer. */
async function freshNode(labels: Record<string, string> = { rack: "a1" }): Promise<NodeRecord> {
  const answer = await call("POST", "/nodes", tokens.admin, {
    mac: mac(),
    hostname: `n-${randomBytes(4).toString("hex")}`,
    profile: "worker",
    labels,
  });
  assert.ok(answer.status === 201, JSON.stringify(answer.json));
  return answer.json as unknown as NodeRecord;
}

/** A body each described route accepts, or at least reads (the answer's status is not the point). */
function sampleBody(key: string): unknown {
  if (key === "POST /nodes") return { mac: mac(), profile: "worker", labels: { rack: "a1" } };
  if (key === "PATCH /nodes/{ref}") return { labels: { rack: "a1", touched: "yes" } };
  if (key === "POST /nodes/{ref}/macs") return { mac: mac() };
  if (key === "POST /tokens") return { name: "made in the table", role: "viewer", scope: "rack=a1", expires: "1h" };
  return {};
}

const SUCCEEDS = new Set([
  "POST /nodes",
  "PATCH /nodes/{ref}",
  "DELETE /nodes/{ref}",
  "POST /nodes/{ref}/provision",
  "POST /nodes/{ref}/reprovision",
  "POST /nodes/{ref}/retire",
  "POST /nodes/{ref}/reactivate",
  "POST /nodes/{ref}/macs",
  "POST /tokens",
  "DELETE /tokens/{id}",
]);

type Operation = { security?: { [scheme: string]: string[] }[] };

async function operations(): Promise<{ key: string; method: string; path: string; security: Operation["security"] }[]> {
  const doc = (await call("GET", "/openapi.json", tokens.viewer)).json as {
    paths: Record<string, Record<string, Operation>>;
  };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      security: operation.security,
    })),
  );
}

const newestAudit = async (): Promise<AuditRecord | undefined> => (await store.audit.list({ limit: 1 }))[0];

test("every API route is described with exactly one role, and none is refused for lack of one", async () => {
  const ops = await operations();
  assert.ok(ops.length >= 14, `the document describes ${ops.length} operations`);
  for (const op of ops) {
    const requirement = op.security;
    assert.ok(Array.isArray(requirement) && requirement.length === 1, `${op.key}: one security requirement`);
    const [scheme, roles] = Object.entries(requirement[0]!)[0]!;
    if (scheme === "callbackToken") continue;
    assert.equal(scheme, "bearer", op.key);
    assert.equal(roles.length, 1, `${op.key}: one role`);
    assert.ok((ROLES as readonly string[]).includes(roles[0]!), `${op.key}: ${roles[0]} is a role`);
  }
  // Every route Fastify registered under /api/v1 is in the table: the plugin logs one that is not.
  assert.deepEqual(
    errors.filter((line) => line.includes("declares no role")),
    [],
    "routes registered without a role in the OpenAPI document",
  );
});

test("each role against each route: 401 without a credential, 403 naming the role below it, through at or above; every change audited", {
  timeout: 120_000,
}, async () => {
  const callers: (Role | "anonymous" | "expired")[] = ["anonymous", "expired", ...ROLES];
  let checked = 0;
  for (const op of await operations()) {
    const [scheme, roles] = Object.entries(op.security![0]!)[0]!;
    if (scheme !== "bearer") continue;
    const needed = roles[0] as Role;
    for (const caller of callers) {
      const node = op.path.includes("{ref}") ? await freshNode() : undefined;
      if (node && op.key === "POST /nodes/{ref}/reactivate") {
        assert.equal((await call("POST", `/nodes/${node.id}/retire`, tokens.admin)).status, 200);
        Object.assign(node, (await call("GET", `/nodes/${node.id}`, tokens.admin)).json);
      }
      const victim = op.path.startsWith("/tokens/{id}") ? (await createApiToken(store, "victim")).record.id : "x";
      const path = op.path.replace("{ref}", node?.hostname ?? "").replace(/\{[^}]+\}/g, victim);
      const token = caller === "anonymous" ? undefined : caller === "expired" ? expired : tokens[caller];
      const body = op.method === "GET" || op.method === "DELETE" ? undefined : sampleBody(op.key);
      const before = await newestAudit();
      const answer = await call(op.method, path, token, body);
      const what = `${caller} ${op.key} → ${answer.status} ${JSON.stringify(answer.json)}`;
      if (caller === "anonymous" || caller === "expired") {
        assert.equal(answer.status, 401, what);
        assert.match(answer.headers.get("www-authenticate") ?? "", /^Bearer realm="centra-pxe"/, what);
        if (caller === "expired") assert.match(answer.headers.get("www-authenticate")!, /error="invalid_token"/, what);
        assert.equal((await newestAudit())?.seq, before?.seq, `${what}: nobody to record`);
        continue;
      }
      const allowed = roleAllows(caller, needed);
      if (allowed) assert.ok(answer.status !== 401 && answer.status !== 403, what);
      else {
        assert.equal(answer.status, 403, what);
        assert.equal(answer.json.requiredRole, needed, what);
        assert.match(String(answer.json.message), new RegExp(`needs the ${needed} role.*has ${caller}`), what);
        assert.match(answer.headers.get("www-authenticate") ?? "", /error="insufficient_scope"/, what);
        if (node) {
          const still = (await call("GET", `/nodes/${node.id}`, tokens.admin)).json as unknown as NodeRecord;
          assert.deepEqual(still, node, `${what}: the refused change changed nothing`);
        }
      }
      const record = await newestAudit();
      if (op.method === "GET") {
        assert.equal(record?.seq, before?.seq, `${what}: reads are not audited`);
      } else {
        assert.ok(record && record.seq !== before?.seq, `${what}: audited`);
        assert.equal(record.action, op.key, what);
        assert.deepEqual(record.actor, { kind: "token", id: tokenIds[caller], name: `${caller}-table` }, what);
        assert.equal(record.status, answer.status, what);
        assert.equal(record.outcome, allowed ? (answer.status < 300 ? "success" : "failed") : "denied", what);
        assert.equal(record.address, "127.0.0.1", what);
        if (node) assert.equal(record.target, node.hostname, what);
        if (victim !== "x") assert.equal(record.target, victim, what);
        // The routes of this file's time do succeed; a route added later may want a body this test does not know.
        if (allowed && SUCCEEDS.has(op.key)) assert.ok(answer.status < 300, `${what}: an allowed change succeeds`);
      }
      checked++;
    }
  }
  assert.ok(checked >= 14 * 3, `${checked} role × route checks`);
});

test("the audit trail keeps no secrets and reads back by actor, action, outcome and time, a page at a time", async () => {
  const node = await freshNode();
  const answer = await call("PATCH", `/nodes/${node.id}`, tokens.admin, {
    labels: { rack: "a1" },
    bmc: { user: "root", password: "hunter2-secret" },
    apiToken: "cpxe_leak_me",
  });
  assert.equal(answer.status, 400, "unknown fields are refused");
  const page = await call(
    "GET",
    `/audit?actor=${tokenIds.admin}&action=PATCH%20/nodes/{ref}&outcome=failed&limit=1`,
    tokens.admin,
  );
  assert.equal(page.status, 200, JSON.stringify(page.json));
  const [record] = page.json.records as AuditRecord[];
  assert.equal(record?.target, node.id);
  assert.deepEqual(record?.summary, {
    labels: { rack: "a1" },
    bmc: { user: "root", password: "[redacted]" },
    apiToken: "[redacted]",
  });
  const everything = JSON.stringify((await call("GET", "/audit?limit=500", tokens.admin)).json);
  assert.doesNotMatch(everything, /hunter2|cpxe_leak_me/);
  // Paging: newest first, `next` is the cursor of the following page.
  const first = await call("GET", "/audit?limit=2", tokens.admin);
  const second = await call("GET", `/audit?limit=2&before=${first.json.next}`, tokens.admin);
  const seqs = [...(first.json.records as AuditRecord[]), ...(second.json.records as AuditRecord[])].map((r) => r.seq);
  assert.deepEqual(
    seqs,
    [...seqs].sort((a, b) => b - a),
  );
  assert.equal(new Set(seqs).size, 4);
  const future = await call("GET", `/audit?since=${new Date(Date.now() + 60_000).toISOString()}`, tokens.admin);
  assert.deepEqual(future.json.records, []);
  const bad = await call("GET", "/audit?outcome=maybe&since=yesterday", tokens.admin);
  assert.equal(bad.status, 400);
  assert.deepEqual(
    (bad.json.problems as { field: string }[]).map((p) => p.field),
    ["outcome", "since"],
  );
});

test("a scoped operator reaches only its labels: by id, MAC and hostname, every route with a node ref answers 404 outside", {
  timeout: 120_000,
}, async () => {
  const inside = await freshNode({ rack: "a1" });
  const ops = (await operations()).filter((op) => op.path.includes("{ref}"));
  for (const op of ops) {
    const [scheme, roles] = Object.entries(op.security![0]!)[0]!;
    if (scheme !== "bearer") continue;
    for (const refOf of [(n: NodeRecord) => n.id, (n: NodeRecord) => n.macs[0]!, (n: NodeRecord) => n.hostname!]) {
      const outside = await freshNode({ rack: "b2" });
      const body = op.method === "GET" || op.method === "DELETE" ? undefined : sampleBody(op.key);
      const path = op.path.replace("{ref}", encodeURIComponent(refOf(outside)));
      const answer = await call(op.method, path, scopedOperator, body);
      const what = `scoped operator ${op.key} as ${path} → ${answer.status} ${JSON.stringify(answer.json)}`;
      if (roleAllows("operator", roles[0] as Role)) {
        assert.equal(answer.status, 404, what);
        assert.equal(
          answer.json.message,
          `node ${refOf(outside)} not found`,
          `${what}: said as of a node that is not there`,
        );
      } else assert.equal(answer.status, 403, what);
      const still = (await call("GET", `/nodes/${outside.id}`, tokens.admin)).json as unknown as NodeRecord;
      assert.deepEqual(still, outside, `${what}: nothing changed`);
      if (op.method !== "GET") assert.equal((await newestAudit())?.outcome, "denied", what);
    }
  }
  assert.equal(
    (await call("POST", `/nodes/${inside.hostname}/provision`, scopedOperator)).status,
    200,
    "inside: allowed",
  );
  assert.equal((await call("POST", `/nodes/${inside.macs[0]}/retire`, scopedOperator)).status, 200);
  assert.equal(
    (await call("PATCH", `/nodes/${inside.id}`, scopedOperator, { labels: {} })).status,
    403,
    "identity is admin's",
  );
});

test("a scoped token lists, reads and streams only its labels' nodes and events", { timeout: 60_000 }, async () => {
  const inside = await freshNode({ rack: "a1" });
  const outside = await freshNode({ rack: "b2" });
  const listed = (await call("GET", "/nodes", scopedViewer)).json.nodes as NodeRecord[];
  assert.ok(listed.some((n) => n.id === inside.id));
  assert.ok(
    listed.every((n) => n.labels.rack === "a1"),
    "only rack a1",
  );
  assert.deepEqual((await call("GET", "/nodes?label=rack=b2", scopedViewer)).json.nodes, []);
  assert.equal((await call("GET", `/nodes/${outside.hostname}`, scopedViewer)).status, 404);
  assert.equal((await call("GET", `/nodes/${outside.id}/events`, scopedViewer)).status, 404);
  const events = (await call("GET", "/events?after=0", scopedViewer)).json.events as { nodeId: string }[];
  assert.ok(events.some((e) => e.nodeId === inside.id));
  assert.ok(!events.some((e) => e.nodeId === outside.id), "no event of another rack");
  assert.deepEqual((await call("GET", `/events?node=${outside.id}`, scopedViewer)).json.events, []);
  assert.equal((await call("GET", "/audit", scopedViewer)).status, 403);
  // The live stream: the replay and live events, both filtered, in order.
  const response = await fetch(`${base}/api/v1/events/stream?after=0`, {
    headers: { authorization: `Bearer ${scopedViewer}` },
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  let text = "";
  await call("POST", `/nodes/${outside.id}/retire`, tokens.admin);
  await call("POST", `/nodes/${inside.id}/retire`, tokens.admin);
  const deadline = Date.now() + 20_000;
  while (!/"toState":"retired"/.test(text) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  await reader.cancel();
  const streamed = [...text.matchAll(/^data: (.*)$/gm)].map(
    (m) => JSON.parse(m[1]!) as { nodeId: string; seq: number },
  );
  assert.ok(streamed.some((e) => e.nodeId === inside.id));
  assert.ok(!streamed.some((e) => e.nodeId === outside.id), "the stream hides another rack");
  const seqs = streamed.map((e) => e.seq);
  assert.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b),
    "in order",
  );
});

test("tokens through the API: made with a grant, shown once, listed without hashes, revoked once; the secret is on no record", async () => {
  const bad = await call("POST", "/tokens", tokens.admin, {
    name: "",
    role: "root",
    scope: ["rack"],
    expires: "soon",
    x: 1,
  });
  assert.equal(bad.status, 400);
  assert.deepEqual(
    (bad.json.problems as { field: string }[]).map((p) => p.field),
    ["name", "role", "scope", "expires", "x"],
  );
  const made = await call("POST", "/tokens", tokens.admin, { name: "grafana", role: "viewer", scope: { rack: "a1" } });
  assert.equal(made.status, 201, JSON.stringify(made.json));
  const secret = String(made.json.token);
  assert.match(secret, /^cpxe_/);
  assert.deepEqual([made.json.role, made.json.scope, made.json.hash], ["viewer", { rack: "a1" }, undefined]);
  assert.equal((await call("GET", "/nodes", secret)).status, 200, "it works at once");
  assert.equal((await call("POST", "/tokens", secret, { name: "escalate", role: "admin" })).status, 403);
  const listed = (await call("GET", "/tokens", tokens.admin)).json.tokens as Record<string, unknown>[];
  assert.ok(listed.some((t) => t.id === made.json.id && t.role === "viewer"));
  assert.ok(listed.every((t) => t.hash === undefined));
  assert.equal((await call("DELETE", `/tokens/${made.json.id}`, tokens.admin)).status, 200);
  assert.equal((await call("DELETE", `/tokens/${made.json.id}`, tokens.admin)).status, 409);
  assert.equal((await call("DELETE", "/tokens/ffffffff", tokens.admin)).status, 404);
  assert.equal((await call("GET", "/nodes", secret)).status, 403, "revoked");
  const trail = JSON.stringify(await store.audit.list({ action: "POST /tokens" }));
  assert.match(trail, /grafana/);
  assert.ok(!trail.includes(secret), "the secret is on no audit record");
});
