import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { repo } from "../support/daemon.js";

/**
 * A stray exception or promise rejection inside the running daemon: logged with where it came
 * from, then the process exits with status 70 rather than serve in a state nobody knows. Runs
 * `serveForever` on loopback only (HTTP on port 0, no DHCP, no TFTP), with the stray error planted
 * by the test's own entry script once the daemon serves.
 */

const dir = mkdtempSync(join(tmpdir(), "stray-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function runDaemonThat(plant: string): Promise<{ code: number | null; log: string }> {
  const config = join(dir, `config-${plant.length}.yaml`);
  writeFileSync(
    config,
    `stateDir: ${join(dir, "state")}\nserverAddress: 127.0.0.1\ndhcp: { mode: "off" }\ntftp: { enabled: false }\nhttp: { port: 0, bindAddress: 127.0.0.1 }\n`,
  );
  const entry = `
    import { loadConfigFile } from ${JSON.stringify(join(repo, "src/config/load.ts"))};
    import { serveForever } from ${JSON.stringify(join(repo, "src/server/serve.ts"))};
    const file = ${JSON.stringify(config)};
    const wrote = process.stdout.write.bind(process.stdout);
    process.stdout.write = (chunk, ...rest) => {
      if (String(chunk).includes('"msg":"serving"')) setTimeout(() => { ${plant} }, 50);
      return wrote(chunk, ...rest);
    };
    await serveForever(loadConfigFile(file), file);
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", entry], {
    cwd: repo,
    stdio: "pipe",
  });
  let log = "";
  child.stdout.on("data", (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, log });
    }),
  );
}

test("a stray exception is logged with its origin and the daemon exits 70", async () => {
  const { code, log } = await runDaemonThat(`throw new Error("planted exception")`);
  assert.equal(code, 70, log);
  assert.match(
    log,
    /"level":60.*"origin":"uncaughtException".*planted exception|"level":60.*planted exception.*"origin":"uncaughtException"/,
  );
});

test("a stray promise rejection is logged and the daemon exits 70", async () => {
  const { code, log } = await runDaemonThat(`Promise.reject(new Error("planted rejection"))`);
  assert.equal(code, 70, log);
  assert.match(log, /"level":60.*planted rejection/);
  assert.match(log, /"origin":"unhandledRejection"/);
});
