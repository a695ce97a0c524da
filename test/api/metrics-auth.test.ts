import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { silentLogger } from "../../src/log.js";
import { createApiToken } from "../../src/provisioning/tokens.js";
import { startServer } from "../../src/server/serve.js";

/** A free loopback port (the daemon's config needs a number before it listens). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("/metrics is open by default and closed by metrics.requireToken, as composed by the daemon; a reload switches it", {
  timeout: 60_000,
}, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "metrics-auth-"));
  const port = await freePort();
  const text = (requireToken: boolean) =>
    `stateDir: ${stateDir}\nserverAddress: 127.0.0.1\nhttp: { port: ${port}, bindAddress: 127.0.0.1 }\ndhcp: { mode: off }\ntftp: { enabled: false }\nmetrics: { requireToken: ${requireToken} }\n`;
  const server = await startServer(parseConfig(text(true)), silentLogger);
  try {
    const { token } = await createApiToken(server.store, "prometheus");
    const url = `http://127.0.0.1:${port}/metrics`;
    const anonymous = await fetch(url);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer/);
    const scraped = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /^centra_pxe_sightings_dropped_total 0$/m);
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200, "/health stays open");
    await server.daemon.reload(parseConfig(text(false)));
    assert.equal((await fetch(url)).status, 200, "open again after a reload");
  } finally {
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
});
