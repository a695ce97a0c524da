import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cliArgs, prepareState, repo, type RunningDaemon, startDaemon } from "../support/daemon.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";

/**
 * The HTTPS boot listener (issue 17) as firmware and strangers meet it: `centra-pxe serve` with a
 * CA and certificate from `centra-pxe tls init`, in its own namespace; openssl, curl and a stranger
 * from the client namespace. EDK2 offers TLS 1.2 with DHE-RSA or plain-RSA AES-GCM suites and no
 * ECDHE: `openssl s_client` offering exactly one of those proves each is accepted.
 */

let link: TestLink | undefined;
let dir: string;
let daemon: RunningDaemon;
let stranger: string;
let tlsFiles: { ca: string; key: string; caKey: string };

before(async () => {
  if (process.getuid?.() !== 0) return;
  link = createLink();
  stranger = link.serverIp.replace(/\.1$/, ".7");
  link.inClient("ip", ["addr", "add", `${stranger}/24`, "dev", link.clientIf]);
  dir = mkdtempSync(join(tmpdir(), "http-tls-"));
  const tls = join(dir, "state", "tls");
  const made = spawnSync(
    process.execPath,
    cliArgs(["tls", "init", "--dir", tls, "--address", link.serverIp, "--json"]),
    { cwd: repo, encoding: "utf8" },
  );
  assert.equal(made.status, 0, made.stderr);
  tlsFiles = { ca: join(tls, "ca.pem"), key: join(tls, "server-key.pem"), caKey: join(tls, "ca-key.pem") };
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      `interface: ${link.serverIf}`,
      `serverAddress: ${link.serverIp}`,
      `stateDir: ${join(dir, "state")}`,
      "dhcp: { mode: off }",
      "tftp: { enabled: false }",
      "http:",
      "  headerTimeout: 2s",
      `  tls: { cert: ${join(tls, "server.pem")}, key: ${tlsFiles.key}, ca: ${tlsFiles.ca} }`,
      "",
    ].join("\n"),
  );
  prepareState(config, { kernel: Buffer.alloc(4096, 1), initrd: Buffer.alloc(4096, 2) });
  daemon = await startDaemon(link, config);
});

after(() => {
  if (daemon && daemon.process.exitCode === null) daemon.process.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A shell line in the client namespace; stdout and stderr together. */
function inClient(line: string): { status: number | null; output: string } {
  const r = spawnSync("ip", ["netns", "exec", link!.clientNs, "sh", "-c", `${line} 2>&1 </dev/null`], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: r.status, output: r.stdout };
}

for (const cipher of ["DHE-RSA-AES256-GCM-SHA384", "AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256"]) {
  test(`EDK2's suite ${cipher} over TLS 1.2 (no ECDHE offered) is accepted and verifies against our CA`, (t) => {
    if (!requireBinaries(t, "openssl", "ip")) return;
    const { output } = inClient(
      `openssl s_client -connect ${link!.serverIp}:443 -tls1_2 -cipher ${cipher} -CAfile ${tlsFiles.ca} -verify_ip ${link!.serverIp} -brief`,
    );
    assert.match(output, new RegExp(`Ciphersuite: ${cipher}\\b`), output);
    assert.match(output, /Protocol version: TLSv1\.2/, output);
    assert.match(output, /Verification: OK/, output);
  });
}

test("a suite we do not offer (Camellia) is refused: the suite tests above can fail", (t) => {
  if (!requireBinaries(t, "openssl", "ip")) return;
  const { output } = inClient(
    `openssl s_client -connect ${link!.serverIp}:443 -tls1_2 -cipher DHE-RSA-CAMELLIA256-SHA -CAfile ${tlsFiles.ca} -brief`,
  );
  assert.doesNotMatch(output, /Ciphersuite:/, output);
  assert.match(output, /handshake failure|no shared cipher|alert/i, output);
});

test("over HTTPS the scripts hand out https:// URLs, over plain HTTP http://; HEAD then GET share one connection", (t) => {
  if (!requireBinaries(t, "curl", "ip")) return;
  const secure = `https://${link!.serverIp}/boot/ipxe/boot.ipxe`;
  const { output, status } = inClient(
    `curl -sv --cacert ${tlsFiles.ca} -I ${secure} --next -s --cacert ${tlsFiles.ca} ${secure}`,
  );
  assert.equal(status, 0, output);
  assert.match(output, /HTTP\/1\.1 200/);
  assert.match(output, /chain --autofree --replace https:\/\/[0-9.]+\/boot\/ipxe\/machine\.ipxe\?/);
  // EDK2's HTTP boot sends HEAD, then GET on the same connection; it fails when the server closes.
  assert.match(output, /Re-using existing connection|Reusing existing/i, "the GET reused the HEAD's connection");
  assert.equal((output.match(/Connected to /g) ?? []).length, 1, output);
  const plain = inClient(`curl -sf http://${link!.serverIp}/boot/ipxe/boot.ipxe`);
  assert.match(plain.output, /chain --autofree --replace http:\/\/[0-9.]+\/boot\/ipxe\/machine\.ipxe\?/);
});

test("a stranger's handshake junk and silent handshakes are cut off, and the private keys are never served", async (t) => {
  if (!requireBinaries(t, "curl", "ip")) return;
  // From the stranger's address: 12 connections sending junk, 12 sending nothing at all (under the
  // per-address cap of 32, so the handshake timeout is what closes them).
  const script = `
    const net = require("node:net");
    const started = Date.now();
    const results = [];
    const one = (junk) => new Promise((resolve) => {
      const s = net.connect({ host: "${link!.serverIp}", port: 443, localAddress: "${stranger}" });
      s.on("connect", () => { if (junk) s.write(Buffer.from("GET / HTTP/1.1\\r\\n\\r\\n" + "\\x16\\x03\\x01\\xff\\xff".repeat(50))); });
      s.on("error", () => {});
      s.on("data", () => {});
      s.on("close", () => resolve({ junk, afterMs: Date.now() - started }));
    });
    Promise.all([...Array(12)].map(() => one(true)).concat([...Array(12)].map(() => one(false))))
      .then((r) => console.log(JSON.stringify(r)));`;
  const attack = link!.spawnInClient(process.execPath, ["-e", script]);
  let out = "";
  attack.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  // While they hold on, a boot client from the client's own address still gets its script.
  const during = inClient(
    `curl -sf --max-time 10 --cacert ${tlsFiles.ca} https://${link!.serverIp}/boot/ipxe/boot.ipxe`,
  );
  assert.equal(during.status, 0, during.output);
  await new Promise<void>((resolve) => attack.once("exit", () => resolve()));
  const closed = JSON.parse(out) as { junk: boolean; afterMs: number }[];
  assert.equal(closed.length, 24);
  for (const c of closed) {
    // headerTimeout is 2 s: the handshake timeout. Junk is refused at once.
    assert.ok(
      c.afterMs < (c.junk ? 3_000 : 8_000),
      `a ${c.junk ? "junk" : "silent"} connection lasted ${c.afterMs} ms`,
    );
  }
  assert.ok(
    closed.filter((c) => !c.junk).every((c) => c.afterMs >= 1_500),
    `silent ones wait for the timeout: ${out}`,
  );

  // The keys live in stateDir/tls, beside what is served: every way round is refused.
  const keys = [readFileSync(tlsFiles.key, "utf8"), readFileSync(tlsFiles.caKey, "utf8")];
  for (const path of [
    "/boot/ipxe/../tls/server-key.pem",
    "/boot/ipxe/..%2ftls%2fserver-key.pem",
    "/boot/images/..%2f..%2ftls/ca-key.pem",
    "/boot/images/../tls/server-key.pem/x",
    "/tls/server-key.pem",
    "/boot/nixos/..%2f..%2ftls%2fserver-key.pem",
  ]) {
    for (const scheme of ["https", "http"]) {
      const r = inClient(
        `curl -s --path-as-is --cacert ${tlsFiles.ca} -w '\\n%{http_code}' '${scheme}://${link!.serverIp}${path}'`,
      );
      assert.doesNotMatch(r.output, /PRIVATE KEY/, `${scheme} ${path}`);
      assert.match(r.output, /\n(400|404)$/, `${scheme} ${path}: ${r.output.slice(-200)}`);
      for (const key of keys) assert.ok(!r.output.includes(key.slice(40, 120)));
    }
  }
  assert.match(daemon.log(), /HTTPS boot service listening/);
});
