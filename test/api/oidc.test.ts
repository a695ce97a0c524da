import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { JWTPayload } from "jose";
import { parseConfig } from "../../src/config/load.js";
import { createAuthenticator } from "../../src/identity/authenticate.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import type { NodeRecord } from "../../src/store/store.js";
import { type ApiServer, startApiServer } from "../support/api-server.js";
import { hmacWithPublicKey, startTestIdp, tamperedJwt, type TestIdp, unsignedJwt } from "../support/test-idp.js";

/**
 * `auth.oidc` against an identity provider made here (keys generated per run, discovery and JWKS
 * on loopback), shaped like Keycloak: roles in `realm_access.roles`, mapped by `roleMap`. The API
 * runs as `serve` composes it, on a loopback port; every token is presented over the socket.
 */

const stateDir = mkdtempSync(join(tmpdir(), "oidc-"));
let idp: TestIdp;
let server: ApiServer;
let base: string;

const person = (roles: string[], extra: JWTPayload = {}): JWTPayload => ({
  sub: `user-${roles.join("-") || "none"}`,
  preferred_username: `${roles[0] ?? "nobody"}@example.com`,
  realm_access: { roles: ["offline_access", ...roles] },
  ...extra,
});

before(async () => {
  idp = await startTestIdp();
  server = await startApiServer(stateDir, {
    extraConfig: `
auth:
  oidc:
    issuer: ${idp.issuer}
    audience: ${idp.audience}
    roleClaim: realm_access.roles
    scopeClaim: centra_scope
    roleMap: { pxe-viewer: viewer, pxe-oncall: operator, pxe-admin: admin }
    clockTolerance: 5s
`,
  });
  base = `http://127.0.0.1:${server.port}/api/v1`;
});

after(async () => {
  await server?.stop();
  await idp?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

async function call(method: string, path: string, token: string | undefined, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate") ?? "",
    json: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
  };
}

test("valid tokens per role, from each allowed algorithm; the subject and issuer are what the trail records", async () => {
  const viewer = await idp.sign(person(["pxe-viewer"]));
  const operator = await idp.sign(person(["pxe-oncall"]), { alg: "ES256" });
  const admin = await idp.sign(person(["pxe-admin", "pxe-viewer"]), { alg: "EdDSA" });
  assert.equal((await call("GET", "/nodes", viewer)).status, 200);
  const created = await call("POST", "/nodes", admin, {
    mac: "52:54:00:0c:00:01",
    profile: "worker",
    hostname: "oidc-01",
  });
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const refused = await call("POST", "/nodes/oidc-01/provision", viewer);
  assert.equal(refused.status, 403);
  assert.equal(refused.json.requiredRole, "operator");
  assert.match(String(refused.json.message), /needs the operator role; subject user-pxe-viewer .* has viewer/);
  assert.equal((await call("POST", "/nodes/oidc-01/provision", operator)).status, 200);
  assert.deepEqual((await call("GET", "/whoami", operator)).json, {
    role: "operator",
    actor: { kind: "oidc", id: "user-pxe-oncall", name: "pxe-oncall@example.com", issuer: idp.issuer },
  });
  assert.equal((await call("GET", "/audit", operator)).status, 403, "the trail is the admin's");
  const trail = (await call("GET", "/audit?limit=3", admin)).json.records as {
    actor: unknown;
    action: string;
    outcome: string;
  }[];
  assert.deepEqual(
    trail.map((r) => [r.action, r.outcome, r.actor]),
    [
      [
        "POST /nodes/{ref}/provision",
        "success",
        { kind: "oidc", id: "user-pxe-oncall", name: "pxe-oncall@example.com", issuer: idp.issuer },
      ],
      [
        "POST /nodes/{ref}/provision",
        "denied",
        { kind: "oidc", id: "user-pxe-viewer", name: "pxe-viewer@example.com", issuer: idp.issuer },
      ],
      [
        "POST /nodes",
        "success",
        { kind: "oidc", id: "user-pxe-admin-pxe-viewer", name: "pxe-admin@example.com", issuer: idp.issuer },
      ],
    ],
  );
  const events = (await call("GET", "/nodes/oidc-01/events", viewer)).json.events as { details: { by?: string } }[];
  assert.ok(
    events.some((e) => e.details.by?.startsWith("oidc:user-pxe-oncall")),
    JSON.stringify(events),
  );
  // Found through discovery, once; not fetched per request.
  assert.equal(idp.requests.get("/realms/centra/.well-known/openid-configuration"), 1);
  assert.equal(idp.requests.get("/realms/centra/protocol/openid-connect/certs"), 1);
});

test("local tokens keep working beside the identity provider", async () => {
  const { token } = await createApiToken(server.store, "script", { role: "viewer" });
  assert.equal((await call("GET", "/nodes", token)).status, 200);
  const missing = await call("GET", "/nodes", undefined);
  assert.equal(missing.status, 401);
  assert.equal(missing.challenge, 'Bearer realm="centra-pxe"');
  assert.match(String(missing.json.message), new RegExp(`or a JWT from ${idp.issuer}`));
});

test("refused: expired, not yet valid, wrong issuer or audience, unknown kid, alg none, HS256 with the public key, tampered, no exp, a stranger's key", async () => {
  const claims = person(["pxe-viewer"]);
  const admin = person(["pxe-admin"]);
  const forged: [string, string][] = [
    ["expired beyond the skew", await idp.sign(claims, { expiresIn: -60 })],
    ["not yet valid", await idp.sign(claims, { notBefore: 120 })],
    ["another issuer", await idp.sign(claims, { issuer: "https://evil.example.com/realms/centra" })],
    ["another audience", await idp.sign(claims, { audience: "grafana" })],
    ["an unknown kid", await idp.sign(claims, { unpublished: { kid: "k-nobody-published" } })],
    ["a stranger's key under a published kid", await idp.sign(admin, { unpublished: { kid: idp.kid("RS256") } })],
    [
      "alg none",
      unsignedJwt({ kid: idp.kid("RS256"), typ: "JWT" }, { ...admin, iss: idp.issuer, aud: idp.audience, exp: 4e9 }),
    ],
    [
      "HS256 signed with the public key",
      hmacWithPublicKey(idp.kid("RS256"), { ...admin, iss: idp.issuer, aud: idp.audience, exp: 4e9 }, idp.publicPem()),
    ],
    [
      "a tampered payload (viewer made admin)",
      tamperedJwt(await idp.sign(claims), (p) => ({ ...p, realm_access: { roles: ["pxe-admin"] } })),
    ],
    ["no exp", await idp.sign(claims, { noExpiry: true })],
    ["not a JWT at all", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"],
  ];
  for (const [what, jwt] of forged) {
    for (const [method, path] of [
      ["GET", "/nodes"],
      ["POST", "/nodes"],
    ] as const) {
      const answer = await call(method, path, jwt, method === "POST" ? { mac: "52:54:00:0c:00:99" } : undefined);
      assert.equal(answer.status, 401, `${what} ${method} ${path}: ${JSON.stringify(answer.json)}`);
      assert.match(answer.challenge, /^Bearer realm="centra-pxe", error="invalid_token"/, what);
    }
  }
  const nodes = (await call("GET", "/nodes", await idp.sign(claims))).json.nodes as NodeRecord[];
  assert.ok(!nodes.some((n) => n.macs.includes("52:54:00:0c:00:99")), "no forged write went through");
  // Within the configured clock skew (5 s) an expiry just passed is still accepted.
  assert.equal((await call("GET", "/nodes", await idp.sign(claims, { expiresIn: -2 }))).status, 200);
  // A valid token whose role claim maps to no role: authenticated, allowed nothing.
  const nobody = await call("GET", "/nodes", await idp.sign(person(["offline_access"])));
  assert.equal(nobody.status, 403);
  assert.match(String(nobody.json.message), /maps to no role/);
});

test("a scope claim narrows the token like a local scope; one that cannot be read refuses it", async () => {
  const admin = await idp.sign(person(["pxe-admin"]));
  for (const [mac, hostname, rack] of [
    ["52:54:00:0c:00:11", "scope-a1", "a1"],
    ["52:54:00:0c:00:12", "scope-b2", "b2"],
  ] as const)
    assert.equal(
      (await call("POST", "/nodes", admin, { mac, hostname, profile: "worker", labels: { rack } })).status,
      201,
    );
  const oncall = await idp.sign(person(["pxe-oncall"], { centra_scope: ["rack=a1"] }));
  assert.equal((await call("POST", "/nodes/scope-a1/provision", oncall)).status, 200);
  assert.equal((await call("POST", "/nodes/scope-b2/provision", oncall)).status, 404);
  assert.equal((await call("POST", "/nodes/52:54:00:0c:00:12/provision", oncall)).status, 404);
  const listed = (await call("GET", "/nodes", oncall)).json.nodes as NodeRecord[];
  assert.deepEqual(
    listed.map((n) => n.hostname),
    ["scope-a1"],
  );
  const scopedAdmin = await idp.sign(person(["pxe-admin"], { centra_scope: { rack: "a1" } }));
  assert.equal((await call("DELETE", "/nodes/scope-a1", scopedAdmin)).status, 403, "admin work needs the whole fleet");
  const garbled = await idp.sign(person(["pxe-oncall"], { centra_scope: ["rack"] }));
  assert.equal((await call("GET", "/nodes", garbled)).status, 403, "an unreadable scope does not widen to the fleet");
});

test("key rotation is picked up on the first unknown kid; made-up kids do not make it fetch the keys per request", {
  timeout: 30_000,
}, async () => {
  const certs = "/realms/centra/protocol/openid-connect/certs";
  const oldToken = await idp.sign(person(["pxe-viewer"]));
  assert.equal((await call("GET", "/nodes", oldToken)).status, 200);
  const fetchedBefore = idp.requests.get(certs) ?? 0;
  for (let i = 0; i < 20; i++)
    await call("GET", "/nodes", await idp.sign(person(["pxe-viewer"]), { unpublished: { kid: `spray-${i}` } }));
  assert.ok((idp.requests.get(certs) ?? 0) - fetchedBefore <= 1, "at most one refetch per cooldown (5 s)");
  await idp.rotate("RS256");
  // The verifier refetches on an unknown kid once its 5 s cooldown since the last fetch is over.
  await new Promise((resolve) => setTimeout(resolve, 5_500));
  const rotated = await idp.sign(person(["pxe-viewer"]));
  const answer = await call("GET", "/nodes", rotated);
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  assert.ok((idp.requests.get(certs) ?? 0) > fetchedBefore, "the key set was fetched again");
  assert.equal((await call("GET", "/nodes", oldToken)).status, 401, "the withdrawn key signs nothing now");
});

test("an identity provider that cannot be reached: its JWTs get 503 (never accepted), local tokens still work", async () => {
  const unreachable = parseConfig(`dhcp: { mode: off }
auth: { oidc: { issuer: "http://127.0.0.1:9/realms/gone", audience: centra-pxe, roleClaim: roles } }
`).auth.oidc;
  const authenticator = createAuthenticator({
    store: server.store,
    oidc: () => unreachable,
    verifier: { timeoutMs: 2_000 },
  });
  const jwt = await idp.sign({ sub: "alice", roles: ["admin"] }, { issuer: "http://127.0.0.1:9/realms/gone" });
  const answer = await authenticator.authenticate(`Bearer ${jwt}`);
  assert.equal(answer.ok, false);
  assert.equal(!answer.ok && answer.status, 503);
  const noKeys = { ...unreachable!, issuer: idp.issuer, jwksUrl: "http://127.0.0.1:9/certs" };
  const direct = createAuthenticator({ store: server.store, oidc: () => noKeys, verifier: { timeoutMs: 2_000 } });
  const viaKeys = await direct.authenticate(`Bearer ${await idp.sign({ sub: "alice", roles: ["admin"] })}`);
  assert.equal(!viaKeys.ok && viaKeys.status, 503, JSON.stringify(viaKeys));
  const { token } = await createApiToken(server.store, "break-glass", { role: "admin" });
  assert.equal((await authenticator.authenticate(`Bearer ${token}`)).ok, true);
});
