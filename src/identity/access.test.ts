import assert from "node:assert/strict";
import { test } from "node:test";
import { inScope, narrowLabels, parseScope, refusal, routeAccessTable, routeKeyOf } from "./access.js";
import { outcomeOf, summarizeChange } from "./audit.js";
import type { Principal } from "./principal.js";

const who = (role: Principal["role"], scope?: Record<string, string>): Principal => ({
  role,
  ...(scope ? { scope } : {}),
  actor: { kind: "token", id: "t1", name: "ops" },
});

test("the table reads each operation's role; a missing, empty, doubled or unknown role is undeclared, never open", () => {
  const table = routeAccessTable({
    paths: {
      "/nodes": { get: { security: [{ bearer: ["viewer"] }] }, post: { security: [{ bearer: ["admin"] }] } },
      "/nodes/{ref}/power": { post: {} },
      "/nodes/{ref}/console": { post: { security: [{ bearer: [] }] } },
      "/a": { get: { security: [{ bearer: ["root"] }] } },
      "/b": { get: { security: [{ bearer: ["viewer"] }, { bearer: ["admin"] }] } },
      "/c": { get: { security: [{ bearer: ["viewer", "admin"] }] } },
      "/nodes/callback": { post: { security: [{ callbackToken: [] }] } },
    },
  });
  assert.deepEqual(table.get("GET /nodes"), { kind: "role", role: "viewer" });
  assert.deepEqual(table.get("POST /nodes"), { kind: "role", role: "admin" });
  assert.deepEqual(table.get("POST /nodes/callback"), { kind: "own-credential" });
  for (const key of ["POST /nodes/{ref}/power", "POST /nodes/{ref}/console", "GET /a", "GET /b", "GET /c"])
    assert.equal(table.get(key)?.kind, "undeclared", key);
  // Deny by default: not even an admin passes a route without a role, nor one the table lacks.
  assert.equal(
    refusal(who("admin"), table.get("POST /nodes/{ref}/power"), "POST /nodes/{ref}/power")?.code,
    "ROUTE_UNDECLARED",
  );
  assert.equal(refusal(who("admin"), undefined, "GET /new")?.code, "ROUTE_UNDECLARED");
});

test("roles are ordered; a scope never reaches admin work", () => {
  const operator = { kind: "role", role: "operator" } as const;
  const admin = { kind: "role", role: "admin" } as const;
  assert.equal(refusal(who("viewer"), operator, "POST /x")?.requiredRole, "operator");
  assert.match(
    refusal(who("viewer"), operator, "POST /x")!.message,
    /POST \/x needs the operator role; token t1 \(ops\) has viewer/,
  );
  assert.equal(refusal(who("operator"), operator, "POST /x"), undefined);
  assert.equal(refusal(who("admin"), operator, "POST /x"), undefined);
  assert.equal(refusal(who("operator", { rack: "a1" }), operator, "POST /x"), undefined);
  assert.equal(refusal(who("admin", { rack: "a1" }), admin, "DELETE /x")?.code, "UNSCOPED_REQUIRED");
});

test("route keys: Fastify's :param is the document's {param}; HEAD is GET", () => {
  assert.equal(routeKeyOf("post", "/api/v1/nodes/:ref/provision", "/api/v1"), "POST /nodes/{ref}/provision");
  assert.equal(routeKeyOf("HEAD", "/api/v1/images", "/api/v1"), "GET /images");
});

test("scopes: parsed from key=value pairs, matched on every label, narrowed into a filter", () => {
  assert.deepEqual(parseScope(["rack=a1,site=fra"]), { scope: { rack: "a1", site: "fra" } });
  assert.deepEqual(parseScope(["rack=a1", "site=fra"]), { scope: { rack: "a1", site: "fra" } });
  assert.deepEqual(parseScope(["rack"]), { problems: ['"rack" is not key=value'] });
  assert.deepEqual(parseScope(["rack=a1", "rack=b2"]), { problems: ["label rack is given twice"] });
  assert.deepEqual(parseScope([]), { problems: ["a scope needs at least one key=value"] });
  assert.equal(inScope({ rack: "a1", role: "db" }, { rack: "a1" }), true);
  assert.equal(inScope({ rack: "b2" }, { rack: "a1" }), false);
  assert.equal(inScope({}, { rack: "a1" }), false);
  assert.equal(inScope({ toString: "x" } as Record<string, string>, { constructor: "x" }), false, "own labels only");
  assert.deepEqual(narrowLabels({ role: "db" }, { rack: "a1" }), { role: "db", rack: "a1" });
  assert.equal(narrowLabels({ rack: "b2" }, { rack: "a1" }), undefined, "asking for another rack matches nothing");
});

test("an audit summary redacts secrets wherever they are and cuts what is long", () => {
  assert.deepEqual(
    summarizeChange({
      hostname: "w1",
      bmc: { address: "10.0.0.5", password: "hunter2", nested: [{ apiKey: "k" }] },
      token: "cpxe_x",
      clientSecret: "s",
      note: "x".repeat(300),
    }),
    {
      hostname: "w1",
      bmc: { address: "10.0.0.5", password: "[redacted]", nested: [{ apiKey: "[redacted]" }] },
      token: "[redacted]",
      clientSecret: "[redacted]",
      note: `${"x".repeat(200)}…`,
    },
  );
  assert.deepEqual(summarizeChange(undefined), {});
  assert.deepEqual(summarizeChange("mac=52:54:00:00:00:01"), { body: "mac=52:54:00:00:00:01" });
  assert.equal(outcomeOf(201), "success");
  assert.equal(outcomeOf(403), "denied");
  assert.equal(outcomeOf(404, true), "denied");
  assert.equal(outcomeOf(409), "failed");
});
