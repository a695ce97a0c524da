import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { exportDhcpd, exportIpxe, exportNginx } from "../../src/migrate/export.js";
import { type ImportRequest, importIscConfig } from "../../src/migrate/import.js";

/**
 * `centra-pxe import` / `export` against the seed's own files, Debian's example dhcpd.conf, and the
 * real ISC dhcpd and nginx, which must accept what `export` writes.
 */

const DATA = join(import.meta.dirname, "../../testdata/migrate");
const read = (name: string) => ({ file: join(DATA, name), text: readFileSync(join(DATA, name), "utf8") });
/** The import's view of this host, fixed so the goldens do not depend on the machine running the test. */
const HOST = [{ name: "br-pxe", address: "10.0.100.10", netmask: "255.255.255.0" }];

/** Debian ships its example with every declaration commented out; `#` right before a statement switched on. */
const DEBIAN_EXAMPLE = "/usr/share/doc/isc-dhcp-server/examples/dhcpd.conf.example";
const uncommented = (text: string) => text.replace(/^#(?=\S| {2})/gm, "");

function golden(name: string, actual: string): void {
  const file = join(DATA, name);
  if (process.env.UPDATE_GOLDEN === "1") writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, "utf8"), `${name} differs (UPDATE_GOLDEN=1 regenerates it)`);
}

function seedImport(): ReturnType<typeof importIscConfig> {
  return importIscConfig({
    dhcpd: read("seed-dhcpd.conf"),
    ipxe: read("seed-boot.ipxe"),
    mappings: read("seed-mac-mappings.txt"),
    interfaces: HOST,
  });
}

/** The YAML without its comments and blank lines: what `validate` and the daemon read. */
const content = (yaml: string) =>
  yaml
    .split("\n")
    .filter((l) => !/^\s*(#|$)/.test(l))
    .map((l) => l.replace(/ #.*$/, ""))
    .join("\n");

function requireBinary(name: string, path: string): boolean {
  if (existsSync(path)) return true;
  assert.ok(process.env.CI !== "true", `${path} is missing (scripts/bootstrap installs ${name})`);
  return false;
}

test("the seed's dhcpd.conf, boot.ipxe and mac-mappings import completely, into a config that validates", () => {
  const result = seedImport();
  golden("seed.golden.yaml", result.yaml);
  assert.deepEqual(result.untranslated, [], "nothing of the seed is left out");
  const config = parseConfig(result.yaml, "seed.golden.yaml");
  assert.equal(config.interface, "br-pxe", "the interface whose address is in the subnet");
  assert.equal(config.serverAddress, "10.0.100.10", "next-server");
  assert.deepEqual(config.dhcp.dns, ["10.0.100.1", "8.8.8.8"]);
  assert.deepEqual(config.nodes["52:54:00:12:34:56"], {
    mac: "52:54:00:12:34:56",
    profile: "control-plane",
    hostname: "control-plane-01",
    ipAddress: "10.0.100.50",
  });
  assert.equal(config.nodes["52:54:00:12:34:5d"]?.profile, "worker", "from the script's iseq line");
  // The BIOS/UEFI/iPXE boot-file choice and option 93's definition are listed as covered, with their lines.
  assert.deepEqual(
    result.covered.map((f) => f.where),
    ["seed-dhcpd.conf:3", "seed-dhcpd.conf:11", "seed-dhcpd.conf:13", "seed-dhcpd.conf:15"],
  );
});

test("Debian's example dhcpd.conf: what cannot be translated is listed with its line and why", () => {
  const text = existsSync(DEBIAN_EXAMPLE)
    ? readFileSync(DEBIAN_EXAMPLE, "utf8")
    : read("debian-dhcpd.conf.example").text;
  assert.equal(text, read("debian-dhcpd.conf.example").text, "testdata holds Debian's file unchanged");
  const plain = importIscConfig({ dhcpd: { file: "dhcpd.conf", text }, interfaces: [] });
  golden("debian-example.golden.yaml", plain.yaml);
  parseConfig(plain.yaml, "debian-example.golden.yaml");
  assert.deepEqual(
    plain.untranslated.map((f) => f.where),
    ["dhcpd.conf:8", "dhcpd.conf:11"],
    "name servers given by name (ns1.example.org), and a max-lease-time other than the default",
  );

  const full = importIscConfig({ dhcpd: { file: "dhcpd.conf", text: uncommented(text) }, interfaces: [] });
  golden("debian-example-uncommented.golden.yaml", full.yaml);
  const config = parseConfig(full.yaml, "debian-example-uncommented.golden.yaml");
  const left = Object.fromEntries(full.untranslated.map((f) => [f.where, f.statement.split(" ")[0]]));
  for (const [where, what] of <[string, string][]>[
    ["dhcpd.conf:88", "class"],
    ["dhcpd.conf:92", "shared-network"],
    ["dhcpd.conf:80", "fixed-address"],
    ["dhcpd.conf:67", "filename"],
    ["dhcpd.conf:11", "max-lease-time"],
  ])
    assert.equal(left[where], what, `${where}: ${what} is listed as left out`);
  assert.ok(full.yaml.includes('#   dhcpd.conf:88: class "foo" { … } -- client classes'), "and as a YAML comment");
  assert.equal(config.nodes["00:00:c0:5d:bd:95"]?.hostname, "passacaglia", "0:0:c0:… is padded; the block name");
  assert.equal(config.dhcp.subnets.length, 2, "the other subnets with a range, for relays");
});

test("a shared network: its subnets are imported one by one, a plain pool joins the subnet of its range", () => {
  const text = `shared-network wire {
  option domain-name "lab";
  subnet 10.0.100.0 netmask 255.255.255.0 { option routers 10.0.100.1; }
  subnet 10.0.101.0 netmask 255.255.255.0 { }
  pool { range 10.0.100.100 10.0.100.200; }
  pool { deny unknown-clients; range 10.0.101.10 10.0.101.20; }
}
`;
  const result = importIscConfig({ dhcpd: { file: "dhcpd.conf", text }, interfaces: HOST });
  const config = parseConfig(result.yaml);
  assert.deepEqual(
    [config.dhcp.subnet, config.dhcp.range, config.dhcp.router],
    ["10.0.100.0", { start: "10.0.100.100", end: "10.0.100.200" }, "10.0.100.1"],
  );
  assert.deepEqual(
    result.untranslated.map((f) => f.where),
    ["dhcpd.conf:1", "dhcpd.conf:2", "dhcpd.conf:6"],
    "the shared network itself, its own parameter, the pool with rules",
  );
});

test("syntax errors are reported at their line and column, and nothing is imported", () => {
  assert.throws(
    () =>
      importIscConfig({
        dhcpd: { file: "bad.conf", text: "subnet 10.0.0.0 netmask 255.0.0.0 {\n range 10.0.0.5 10.0.0.9;\n" },
        interfaces: [],
      }),
    /bad\.conf:1:35: this \{ is never closed/,
  );
  assert.throws(
    () => importIscConfig({ dhcpd: { file: "bad.conf", text: 'option domain-name "x\n' }, interfaces: [] }),
    /bad\.conf:1:20: unterminated string/,
  );
  assert.throws(
    () =>
      importIscConfig({
        dhcpd: { file: "bad.conf", text: "host a {\n hardware ethernet 1:2:3:4:5:6\n}\n" },
        interfaces: [],
      }),
    /bad\.conf:3:1: missing ; before \}/,
  );
});

test("round trip: import the seed, export dhcpd.conf (dhcpd -t accepts it) and boot.ipxe, import again: the same YAML", (t) => {
  if (!requireBinary("isc-dhcp-server", "/usr/sbin/dhcpd")) return t.skip("dhcpd is not installed");
  const dir = mkdtempSync(join(tmpdir(), "centra-migrate-"));
  try {
    const first = seedImport();
    const config = parseConfig(first.yaml);
    const dhcpdConf = exportDhcpd(config);
    golden("seed-export.dhcpd.conf", dhcpdConf);
    golden("seed-export.boot.ipxe", exportIpxe(config));
    writeFileSync(join(dir, "dhcpd.conf"), dhcpdConf);
    const check = spawnSync("/usr/sbin/dhcpd", ["-t", "-cf", join(dir, "dhcpd.conf")], { encoding: "utf8" });
    assert.equal(check.status, 0, `dhcpd -t refused the export:\n${check.stderr}`);

    const again: ImportRequest = {
      dhcpd: { file: join(dir, "dhcpd.conf"), text: dhcpdConf },
      ipxe: { file: join(dir, "boot.ipxe"), text: exportIpxe(config) },
      interfaces: HOST,
    };
    const second = importIscConfig(again);
    assert.deepEqual(second.untranslated, [], "our own export translates completely");
    assert.equal(content(second.yaml), content(first.yaml));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("export of richer nodes: a host block per MAC (dhcpd -t accepts them), selectors iPXE can test", (t) => {
  if (!requireBinary("isc-dhcp-server", "/usr/sbin/dhcpd")) return t.skip("dhcpd is not installed");
  const config = parseConfig(`
serverAddress: 10.0.100.10
stateDir: /var/lib/pxe-boot
http: { port: 8080 }
dhcp: { subnets: [{ subnet: 10.0.101.0, netmask: 255.255.255.0, range: { start: 10.0.101.10, end: 10.0.101.20 } }] }
nodes:
  "52:54:00:aa:00:01": { profile: worker, hostname: worker-01, ipAddress: 10.0.100.61, macs: ["52:54:00:aa:00:02"] }
  "52:54:00:aa:00:03": { ipAddress: 10.0.100.62 }
selectors:
  - { match: { arch: efi-x64, uuid: 4c4c4544-0042-3510-8052-b4c04f384d32 }, profile: control-plane }
  - { match: { labels: { rack: a1 } }, profile: all-in-one }
  - { match: { arch: bios }, profile: worker }
`);
  const dhcpdConf = exportDhcpd(config);
  golden("richer-export.dhcpd.conf", dhcpdConf);
  golden("richer-export.boot.ipxe", exportIpxe(config));
  golden("richer-export.nginx.conf", exportNginx(config));
  const dir = mkdtempSync(join(tmpdir(), "centra-migrate-"));
  try {
    writeFileSync(join(dir, "dhcpd.conf"), dhcpdConf);
    const check = spawnSync("/usr/sbin/dhcpd", ["-t", "-cf", join(dir, "dhcpd.conf")], { encoding: "utf8" });
    assert.equal(check.status, 0, `dhcpd -t refused the export:\n${check.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("dhcpd -t refuses a broken dhcpd.conf (so the round trip's check can fail)", (t) => {
  if (!requireBinary("isc-dhcp-server", "/usr/sbin/dhcpd")) return t.skip("dhcpd is not installed");
  const dir = mkdtempSync(join(tmpdir(), "centra-migrate-"));
  try {
    const broken = exportDhcpd(parseConfig(seedImport().yaml)).replace(
      "range 10.0.100.100 10.0.100.200;",
      "range 10.0.100.100;;;x",
    );
    writeFileSync(join(dir, "dhcpd.conf"), broken);
    assert.notEqual(spawnSync("/usr/sbin/dhcpd", ["-t", "-cf", join(dir, "dhcpd.conf")]).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("nginx -t accepts the nginx export", async (t) => {
  if (!requireBinary("nginx-light", "/usr/sbin/nginx")) return t.skip("nginx is not installed");
  const dir = mkdtempSync(join(tmpdir(), "centra-migrate-"));
  try {
    // nginx -t binds the listen address: loopback and a port free now.
    const port = await freePort();
    const yaml = `${seedImport().yaml}\nstateDir: ${dir}\nhttp: { bindAddress: 127.0.0.1, port: ${port} }\n`;
    const text = exportNginx(parseConfig(yaml));
    assert.match(text, new RegExp(`listen 127\\.0\\.0\\.1:${port};`));
    writeFileSync(join(dir, "nginx.conf"), text);
    const check = spawnSync("/usr/sbin/nginx", ["-t", "-c", join(dir, "nginx.conf")], { encoding: "utf8" });
    assert.equal(check.status, 0, `nginx -t refused the export:\n${check.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the CLI: exit 0 for the seed, 2 with the untranslated lines on stderr, 1 and nothing written on a syntax error", () => {
  const dir = mkdtempSync(join(tmpdir(), "centra-migrate-"));
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "../../src/cli/main.ts"), ...args], {
      encoding: "utf8",
      cwd: join(import.meta.dirname, "../.."),
    });
  try {
    const out = join(dir, "config.yaml");
    const seed = cli(
      "import",
      "--dhcpd",
      join(DATA, "seed-dhcpd.conf"),
      "--ipxe",
      join(DATA, "seed-boot.ipxe"),
      "--out",
      out,
    );
    assert.equal(seed.status, 0, seed.stderr);
    assert.equal(cli("validate", "--config", out).status, 0);
    const exported = cli("export", "dhcpd", "--config", out);
    assert.equal(exported.status, 0, exported.stderr);
    assert.match(exported.stdout, /host control-plane-01 \{\n {2}hardware ethernet 52:54:00:12:34:56;/);

    writeFileSync(join(dir, "debian.conf"), uncommented(read("debian-dhcpd.conf.example").text));
    const partial = cli("import", "--dhcpd", join(dir, "debian.conf"));
    assert.equal(partial.status, 2);
    assert.match(partial.stderr, /^debian\.conf:88: not translated: class "foo" \{ … \} -- client classes/m);
    assert.match(partial.stdout, /^nodes:/m, "written anyway, to stdout");

    writeFileSync(join(dir, "broken.conf"), "subnet 10.0.0.0 netmask 255.0.0.0 {\n");
    const broken = cli("import", "--dhcpd", join(dir, "broken.conf"), "--out", join(dir, "never.yaml"));
    assert.equal(broken.status, 1);
    assert.match(broken.stderr, /broken\.conf:1:35/);
    assert.equal(existsSync(join(dir, "never.yaml")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
