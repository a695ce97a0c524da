import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { AuditRecord } from "../../src/store/store.js";
import { type ApiServer, startApiServer } from "../support/api-server.js";
import { cliProcess } from "../support/daemon.js";

/**
 * `centra-pxe token create --role --scope --expires`, `token list`, and `centra-pxe audit`, each
 * run as its own process against a real server on a loopback port; the CLI's own changes on the
 * store file (tokens) are on the trail under the local user.
 */

const _root = fileURLToPath(new URL("../..", import.meta.url));
const stateDir = mkdtempSync(join(tmpdir(), "cli-identity-"));
let server: ApiServer | undefined;
let url: string;

before(async () => {
  server = await startApiServer(stateDir);
  url = `http://127.0.0.1:${server.port}`;
});

after(async () => {
  await server?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}) => cliProcess(args, { CENTRA_PXE_URL: url, ...env });

test("token create with a role, a scope and an expiry; list shows them; bad grants are refused at once", {
  timeout: 120_000,
}, async () => {
  const bad = await cli([
    "token",
    "create",
    "--role",
    "root",
    "--scope",
    "rack",
    "--expires",
    "soon",
    "--state-dir",
    stateDir,
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--role: must be one of viewer, operator, admin, got "root"/);
  assert.match(bad.stderr, /--scope: "rack" is not key=value/);
  assert.match(bad.stderr, /--expires: not a duration such as 12h or 30d: "soon"/);
  const scopedAdmin = await cli(["token", "create", "--role", "admin", "--scope", "rack=a1", "--state-dir", stateDir]);
  assert.equal(scopedAdmin.code, 1);
  assert.match(scopedAdmin.stderr, /an admin token is for the whole fleet/);

  const made = await cli([
    "token",
    "create",
    "--name",
    "a1 on-call",
    "--role",
    "operator",
    "--scope",
    "rack=a1",
    "--scope",
    "site=fra",
    "--expires",
    "30d",
    "--state-dir",
    stateDir,
    "--json",
  ]);
  assert.equal(made.code, 0, made.stderr);
  const token = JSON.parse(made.stdout) as {
    id: string;
    role: string;
    scope: unknown;
    expiresAt: string;
    token: string;
  };
  assert.equal(token.role, "operator");
  assert.deepEqual(token.scope, { rack: "a1", site: "fra" });
  const days = (Date.parse(token.expiresAt) - Date.now()) / 86_400_000;
  assert.ok(days > 29.9 && days <= 30, `expires in ${days} days`);

  const listed = await cli(["token", "list", "--state-dir", stateDir]);
  assert.match(listed.stdout, /^ID\s+NAME\s+ROLE\s+SCOPE\s+CREATED\s+EXPIRES/m);
  assert.match(
    listed.stdout,
    new RegExp(`^${token.id}\\s+a1 on-call\\s+operator\\s+rack=a1,site=fra\\s+\\S+\\s+${token.expiresAt}`, "m"),
  );

  // The operator token is refused what an admin does, through the CLI too, naming the role.
  const refused = await cli(["nodes", "add", "52:54:00:1c:00:01", "--profile", "worker"], {
    CENTRA_PXE_TOKEN: token.token,
  });
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /HTTP 403: POST \/nodes needs the admin role; token [0-9a-f]{8} \(a1 on-call\) has operator/,
  );
});

test("centra-pxe audit: the API's changes and the CLI's own, newest first, filtered; admin only", {
  timeout: 120_000,
}, async () => {
  const admin = JSON.parse(
    (await cli(["token", "create", "--name", "auditor", "--state-dir", stateDir, "--json"])).stdout,
  ) as {
    id: string;
    token: string;
  };
  const viewer = JSON.parse(
    (await cli(["token", "create", "--name", "wall", "--role", "viewer", "--state-dir", stateDir, "--json"])).stdout,
  ) as { id: string; token: string };
  assert.equal(
    (
      await cli(["nodes", "add", "52:54:00:1c:00:02", "--profile", "worker", "--hostname", "cli-02"], {
        CENTRA_PXE_TOKEN: admin.token,
      })
    ).code,
    0,
  );
  assert.equal((await cli(["token", "revoke", viewer.id, "--state-dir", stateDir])).code, 0);
  assert.equal((await cli(["token", "revoke", "ffffffff", "--state-dir", stateDir])).code, 1);

  const json = await cli(["audit", "--json", "--limit", "5"], { CENTRA_PXE_TOKEN: admin.token });
  assert.equal(json.code, 0, json.stderr);
  const records = (JSON.parse(json.stdout) as { records: AuditRecord[] }).records;
  assert.deepEqual(
    records.slice(0, 4).map((r) => [r.action, r.target, r.outcome, r.actor.kind, r.address]),
    [
      ["token revoke", "ffffffff", "failed", "local", "local"],
      ["token revoke", viewer.id, "success", "local", "local"],
      ["POST /nodes", undefined, "success", "token", "127.0.0.1"],
      ["token create", undefined, "success", "local", "local"],
    ],
  );
  assert.deepEqual(records[3]!.summary, { name: "wall", role: "viewer" }, "what was granted, never the token");
  assert.doesNotMatch(json.stdout, new RegExp(viewer.token));

  const table = await cli(["audit", "--action", "token *", "--outcome", "failed"], { CENTRA_PXE_TOKEN: admin.token });
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^SEQ\s+AT\s+ACTOR\s+FROM\s+ACTION\s+TARGET\s+OUTCOME/m);
  assert.match(table.stdout, /local \S+.*\s+local\s+token revoke\s+ffffffff\s+failed 404/);
  assert.doesNotMatch(table.stdout, /success/);

  const notAdmin = await cli(["audit"], { CENTRA_PXE_TOKEN: viewer.token });
  assert.equal(notAdmin.code, 1);
});
