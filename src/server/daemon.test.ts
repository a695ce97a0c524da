import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import type { Service } from "../contracts/service.js";
import { ReloadFailedError, ReloadRefusedError } from "../errors.js";
import { silentLogger } from "../log.js";
import { Daemon } from "./daemon.js";

const OLD = parseConfig("logLevel: info\n", "old.yaml");
const NEW = parseConfig("logLevel: debug\n", "new.yaml");

/** A part that remembers the config it runs on, and can be told to refuse or fail. */
function part(name: string, behaviour: { refuse?: boolean; failApply?: boolean; failRollback?: boolean } = {}) {
  const seen = { name, config: OLD, reloads: 0 };
  const service: Service = {
    name,
    start: async () => undefined,
    stop: async () => undefined,
    check(config: Config) {
      if (behaviour.refuse && config === NEW) throw new Error(`${name} cannot take it`);
    },
    async reload(config: Config) {
      seen.reloads++;
      if (behaviour.failApply && config === NEW) throw new Error(`${name} could not bind`);
      if (behaviour.failRollback && config === OLD) throw new Error(`${name} is stuck`);
      seen.config = config;
    },
    health: () => ({ ok: true }),
  };
  return { service, seen };
}

async function daemonOf(parts: ReturnType<typeof part>[]): Promise<Daemon> {
  const daemon = new Daemon(OLD, silentLogger);
  for (const p of parts) daemon.register(p.service);
  await daemon.start();
  return daemon;
}

test("a part refusing in check: no part applies the config, every refusal is named", async () => {
  const parts = [part("provisioning"), part("http", { refuse: true }), part("tftp"), part("dhcp", { refuse: true })];
  const daemon = await daemonOf(parts);
  const error = await daemon.reload(NEW).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ReloadRefusedError, String(error));
  assert.deepEqual(
    error.refusals.map((r) => r.part),
    ["http", "dhcp"],
  );
  for (const p of parts) {
    assert.equal(p.seen.config, OLD, `${p.seen.name} kept the old config`);
    assert.equal(p.seen.reloads, 0, `${p.seen.name} was not reloaded at all`);
  }
  assert.equal(daemon.currentConfig, OLD);
});

test("every part accepting: each applies the new config, in start order", async () => {
  const parts = [part("provisioning"), part("http"), part("dhcp")];
  const daemon = await daemonOf(parts);
  await daemon.reload(NEW);
  for (const p of parts) assert.equal(p.seen.config, NEW);
  assert.equal(daemon.currentConfig, NEW);
});

test("a part failing to apply after every check passed: the parts that applied go back to the old config", async () => {
  const parts = [part("provisioning"), part("http"), part("tftp", { failApply: true }), part("dhcp")];
  const daemon = await daemonOf(parts);
  const error = await daemon.reload(NEW).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ReloadFailedError, String(error));
  assert.equal(error.part, "tftp");
  assert.equal(error.rolledBack, true);
  for (const p of parts) assert.equal(p.seen.config, OLD, `${p.seen.name} is on the old config`);
  assert.equal(parts[3]!.seen.reloads, 0, "dhcp, after the failing part, was never touched");
  assert.equal(daemon.currentConfig, OLD);
});

test("a rollback that fails too says the daemon is on no known config", async () => {
  const parts = [part("provisioning", { failRollback: true }), part("http", { failApply: true })];
  const daemon = await daemonOf(parts);
  const error = await daemon.reload(NEW).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof ReloadFailedError, String(error));
  assert.equal(error.rolledBack, false);
  assert.match(error.message, /provisioning: provisioning is stuck/);
});

test("start-up aborted between parts: what started is stopped, the rest never starts", async () => {
  const log: string[] = [];
  const controller = new AbortController();
  const daemon = new Daemon(OLD, silentLogger);
  for (const name of ["provisioning", "http", "dhcp"]) {
    daemon.register({
      name,
      async start() {
        log.push(`start ${name}`);
        if (name === "http") controller.abort(new Error("SIGTERM"));
      },
      async stop() {
        log.push(`stop ${name}`);
      },
      health: () => ({ ok: true }),
    });
  }
  await assert.rejects(daemon.start(controller.signal), /SIGTERM/);
  assert.deepEqual(log, ["start provisioning", "start http", "stop http", "stop provisioning"]);
});
