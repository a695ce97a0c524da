import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createApiToken } from "../../src/provisioning/tokens.js";
import type { NodeRecord } from "../../src/store/store.js";
import { type ApiServer, startApiServer } from "../support/api-server.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";
import { hmacWithPublicKey, startTestIdp, type TestIdp, unsignedJwt } from "../support/test-idp.js";

/**
 * Issue 14 as a stranger on the provisioning network would try it: the API (as `serve` composes
 * it) on the server end of a veth pair; in the client namespace a second address (.3) that holds
 * what a stranger could get hold of: a viewer token from a wall dashboard, an operator token scoped
 * to rack a1, the identity provider's public key. With each, curl tries every write the API
 * describes, every route that names a node by id, MAC or hostname outside the scope, and forged JWTs.
 */

let link: TestLink | undefined;
let idp: TestIdp;
let server: ApiServer;
let dir: string;
let strangerIp: string;
let admin: string;
let viewer: string;
let scopedOperator: string;
let inside: NodeRecord;
let outside: NodeRecord;

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink({ serverInRoot: true });
  strangerIp = `${link.serverIp.replace(/\.1$/, "")}.3`;
  link.inClient("ip", ["addr", "add", `${strangerIp}/24`, "dev", link.clientIf]);
  dir = mkdtempSync(join(tmpdir(), "identity-attacker-"));
  idp = await startTestIdp();
  server = await startApiServer(dir, {
    address: link.serverIp,
    extraConfig: `
auth:
  oidc: { issuer: "${idp.issuer}", audience: ${idp.audience}, roleClaim: roles, scopeClaim: scope_labels }
`,
  });
  admin = (await createApiToken(server.store, "ops")).token;
  viewer = (await createApiToken(server.store, "wall dashboard", { role: "viewer" })).token;
  scopedOperator = (await createApiToken(server.store, "a1 on-call", { role: "operator", scope: { rack: "a1" } }))
    .token;
  const add = async (mac: string, hostname: string, rack: string) => {
    const response = await fetch(`http://${link!.serverIp}:${server.port}/api/v1/nodes`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ mac, hostname, profile: "worker", labels: { rack } }),
    });
    assert.equal(response.status, 201);
    return (await response.json()) as NodeRecord;
  };
  inside = await add("52:54:00:14:00:01", "rack-a1-01", "a1");
  outside = await add("52:54:00:14:00:02", "rack-b2-01", "b2");
});

after(async () => {
  await server?.stop();
  await idp?.close();
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** curl from the stranger's address; asynchronous, so the in-process server can answer meanwhile. */
function stranger(method: string, path: string, token?: string, body?: unknown) {
  const args = ["-sS", "--max-time", "20", "--interface", strangerIp, "-X", method, "-w", "\n%{http_code}"];
  if (token) args.push("-H", `authorization: Bearer ${token}`);
  if (body !== undefined) args.push("-H", "content-type: application/json", "--data-binary", JSON.stringify(body));
  args.push(`http://${link!.serverIp}:${server.port}/api/v1${path}`);
  const child = link!.spawnInClient("curl", args);
  let out = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", () => {
      const cut = out.lastIndexOf("\n");
      const text = out.slice(0, cut);
      try {
        resolve({
          status: Number(out.slice(cut + 1)),
          json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
        });
      } catch (error) {
        reject(new Error(`curl said ${out}`, { cause: error }));
      }
    });
  });
}

type Doc = { paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>> };
/** The described operations with their role, as the stranger reads them with the viewer token. */
async function describedRoutes(): Promise<{ method: string; path: string; role: string | undefined }[]> {
  const doc = (await stranger("GET", "/openapi.json", viewer)).json as unknown as Doc;
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      role: op.security?.[0]?.bearer?.[0],
    })),
  );
}

const nodeNow = async (id: string) =>
  (await (
    await fetch(`http://${link!.serverIp}:${server.port}/api/v1/nodes/${id}`, {
      headers: { authorization: `Bearer ${admin}` },
    })
  ).json()) as NodeRecord;

test("a viewer token tries every write the API describes: 403 naming the role, nothing changed, each attempt on the trail with its address", {
  timeout: 120_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const writes = (await describedRoutes()).filter((r) => r.method !== "GET" && r.role !== undefined);
  assert.ok(writes.length >= 8, `${writes.length} writes described`);
  for (const route of writes) {
    const path = route.path.replace("{ref}", inside.hostname!).replace(/\{[^}]+\}/g, "x");
    const answer = await stranger(route.method, path, viewer, { mac: "52:54:00:14:00:99", labels: { rack: "b2" } });
    assert.equal(answer.status, 403, `${route.method} ${path}: ${JSON.stringify(answer.json)}`);
    assert.equal(answer.json.requiredRole, route.role);
  }
  assert.deepEqual(await nodeNow(inside.id), inside, "the node is as it was");
  const denied = (await server.store.audit.list({ outcome: "denied", actor: "wall dashboard" })).filter(
    (r) => r.address === strangerIp,
  );
  assert.equal(denied.length, writes.length, "every attempt is on the trail with the stranger's address");
});

test("an operator token scoped to rack a1 reaches for rack b2 by id, MAC and hostname through every node route: 404 or 403, nothing changed", {
  timeout: 120_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const nodeRoutes = (await describedRoutes()).filter((r) => r.path.includes("{ref}") && r.role !== undefined);
  for (const route of nodeRoutes) {
    for (const ref of [outside.id, outside.macs[0]!, outside.hostname!]) {
      const path = route.path.replace("{ref}", ref);
      const answer = await stranger(route.method, path, scopedOperator, {
        mac: "52:54:00:14:00:98",
        labels: { rack: "a1" },
      });
      const what = `${route.method} ${path}: ${answer.status} ${JSON.stringify(answer.json)}`;
      if (route.role === "admin") assert.equal(answer.status, 403, what);
      else {
        assert.equal(answer.status, 404, what);
        assert.equal(answer.json.message, `node ${ref} not found`, what);
      }
    }
  }
  assert.deepEqual(await nodeNow(outside.id), outside, "rack b2's node is as it was");
  const listed = (await stranger("GET", "/nodes", scopedOperator)).json.nodes as NodeRecord[];
  assert.deepEqual(
    listed.map((n) => n.id),
    [inside.id],
  );
  assert.equal(
    (await stranger("POST", `/nodes/${inside.macs[0]}/provision`, scopedOperator)).status,
    200,
    "its own rack: yes",
  );
});

test("forged JWTs: alg none, HS256 keyed with the public key, a stranger's key under the issuer's kid, another issuer: 401 each", {
  timeout: 60_000,
}, async (t) => {
  if (!requireBinaries(t, "curl")) return;
  const claims = { sub: "mallory", roles: ["admin"], iss: idp.issuer, aud: idp.audience, exp: 4e9 };
  const forgeries = [
    unsignedJwt({ kid: idp.kid(), typ: "JWT" }, claims),
    hmacWithPublicKey(idp.kid(), claims, idp.publicPem()),
    await idp.sign({ sub: "mallory", roles: ["admin"] }, { unpublished: { kid: idp.kid() } }),
    await idp.sign({ sub: "mallory", roles: ["admin"] }, { issuer: `https://${strangerIp}/realms/centra` }),
  ];
  for (const jwt of forgeries) {
    for (const [method, path] of [
      ["POST", "/nodes"],
      ["DELETE", `/nodes/${inside.id}`],
      ["GET", "/audit"],
    ] as const) {
      const answer = await stranger(method, path, jwt, method === "POST" ? { mac: "52:54:00:14:00:97" } : undefined);
      assert.equal(answer.status, 401, `${method} ${path} ${jwt.slice(0, 30)}…: ${JSON.stringify(answer.json)}`);
    }
  }
  assert.equal((await nodeNow(inside.id)).id, inside.id, "still there");
  // The real issuer's token for the same claims works: the refusals were the forgeries', not the route's.
  const real = await idp.sign({ sub: "alice", roles: ["admin"] });
  assert.equal((await stranger("GET", "/audit?limit=1", real)).status, 200);
});
