import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type ApiServer, startApiServer } from "../support/api-server.js";
import { waitFor, cliProcess } from "../support/daemon.js";

/**
 * `centra-pxe token …` on the store file and `centra-pxe nodes …` against a real server on a
 * loopback port, each run as its own process the way an operator runs it.
 */

const root = fileURLToPath(new URL("../..", import.meta.url));
const stateDir = mkdtempSync(join(tmpdir(), "cli-"));
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

const cli = (args: string[], env: Record<string, string> = {}) => cliProcess(args, env);

test("token create/list/revoke on the store file, and nodes add/list/show/provision/remove through the API", {
  timeout: 5 * 60_000,
}, async () => {
  const created = await cli(["token", "create", "--name", "ci", "--state-dir", stateDir]);
  assert.equal(created.code, 0, created.stderr);
  const token = created.stdout.trim();
  assert.match(token, /^cpxe_[0-9a-f]{8}_/);
  const env = { CENTRA_PXE_URL: url, CENTRA_PXE_TOKEN: token };

  const refused = await cli(["nodes", "add", "52:54:00:00:00:01", "--url", url]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /needs an admin token/);

  const bad = await cli(["nodes", "add", "nope", "--profile", "nosuch"], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /HTTP 400/);
  assert.match(bad.stderr, /macs\[0\]: "nope" is not a MAC address/);
  assert.match(bad.stderr, /profile: unknown profile "nosuch"/);

  const added = await cli(
    [
      "nodes",
      "add",
      "52:54:00:00:00:01",
      "52:54:00:00:00:02",
      "--profile",
      "worker",
      "--hostname",
      "worker-01",
      "--label",
      "rack=a1",
      "--json",
    ],
    env,
  );
  assert.equal(added.code, 0, added.stderr);
  const node = JSON.parse(added.stdout) as { id: string; state: string; macs: string[] };
  assert.equal(node.state, "ready");
  assert.deepEqual(node.macs, ["52:54:00:00:00:01", "52:54:00:00:00:02"]);

  const listed = await cli(["nodes", "list", "--label", "rack=a1"], env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^${node.id}\\s+ready\\s+worker\\s+worker-01`, "m"));

  const provisioned = await cli(["nodes", "provision", "worker-01"], env);
  assert.equal(provisioned.code, 0, provisioned.stderr);
  assert.match(provisioned.stdout, /is provisioning \(callback expected by /);

  const shown = await cli(["nodes", "show", "52-54-00-00-00-02"], env);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^state\s+provisioning/m);
  assert.match(shown.stdout, /transition ready→provisioning \(provision\) by token:[0-9a-f]{8} ci/);

  // Follow the live stream in another process while a change is made.
  const follower = spawn(
    process.execPath,
    ["--import", "tsx", join(root, "src/cli/main.ts"), "nodes", "events", node.id, "--follow", "--limit", "1"],
    {
      cwd: root,
      env: { ...process.env, ...env },
    },
  );
  let followed = "";
  const sawRetire = new Promise<void>((resolve, reject) => {
    follower.stdout.on("data", (chunk: Buffer) => {
      followed += chunk.toString();
      if (/ransition provisioning→retired/.test(followed)) resolve();
    });
    follower.on("exit", (code) => reject(new Error(`follower exited ${code}: ${followed}`)));
  });
  try {
    await waitFor("the follower printed the last event", () => /ready→provisioning/.test(followed));
    assert.equal((await cli(["nodes", "retire", node.id], env)).code, 0);
    await sawRetire;
  } finally {
    follower.kill();
  }
  assert.equal((await cli(["nodes", "reactivate", node.id], env)).code, 0);

  const listedTokens = await cli(["token", "list", "--state-dir", stateDir]);
  const id = /^([0-9a-f]{8})\s+ci\s/m.exec(listedTokens.stdout)?.[1];
  assert.ok(id, listedTokens.stdout);
  assert.equal((await cli(["token", "revoke", id, "--state-dir", stateDir])).code, 0);

  const afterRevoke = await cli(["nodes", "remove", node.id], env);
  assert.equal(afterRevoke.code, 1);
  assert.match(afterRevoke.stderr, /HTTP 403: token .* was revoked/);

  const second = (await cli(["token", "create", "--state-dir", stateDir])).stdout.trim();
  const removed = await cli(["nodes", "remove", node.id], { ...env, CENTRA_PXE_TOKEN: second });
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal((await cli(["nodes", "list", "--json"], { ...env, CENTRA_PXE_TOKEN: second })).stdout.trim(), "[]");
  // Reads need the token too: the revoked one reads nothing, and none at all is refused before asking.
  assert.match((await cli(["nodes", "list", "--json"], env)).stderr, /HTTP 403: token .* was revoked/);
  assert.match((await cli(["nodes", "list", "--url", url])).stderr, /needs an admin token/);
});
