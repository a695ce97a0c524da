import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { connect } from "node:tls";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { initTls } from "../../src/tls/certificates.js";
import { requireBinaries } from "../support/netns.js";

/** The HTTPS listener across reloads: a renewed certificate is served after a reload, a broken one is refused. */

const dir = mkdtempSync(join(tmpdir(), "tls-reload-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The fingerprint of the certificate the listener presents now. */
function presented(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.end();
    });
    socket.once("error", reject);
  });
}

test("SIGHUP re-reads the certificate files; a key that does not load is refused and the old one keeps serving", async (t) => {
  if (!requireBinaries(t, "openssl")) return;
  const made = await initTls(join(dir, "tls"), { names: ["127.0.0.1"] });
  const yaml = (key: string) =>
    `stateDir: ${dir}\nserverAddress: 127.0.0.1\ndhcp: { mode: off }\nhttp: { port: 0, tls: { port: 0, cert: ${made.files.cert}, key: ${key} } }\n`;
  const config = parseConfig(yaml(made.files.key));
  const service = createHttpService({ config, logger: silentLogger });
  await service.start();
  try {
    const port = service.tlsAddress()!.port;
    const first = await presented(port);
    await initTls(join(dir, "tls"), { names: ["127.0.0.1"], renew: true });
    await service.check!(config);
    await service.reload!(config);
    assert.equal(service.tlsAddress()!.port, port, "same listener");
    const second = await presented(port);
    assert.notEqual(second, first, "the renewed certificate is served");

    writeFileSync(join(dir, "broken-key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    await assert.rejects(async () => service.check!(parseConfig(yaml(join(dir, "broken-key.pem")))));
    await assert.rejects(
      async () => service.check!(parseConfig(yaml(join(dir, "missing.pem")))),
      /cannot read http\.tls\.key/,
    );
    assert.equal(await presented(port), second, "still serving");
    assert.deepEqual(service.health(), { ok: true });
  } finally {
    await service.stop();
  }
});
