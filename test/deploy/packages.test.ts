import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { repo, waitFor } from "../support/daemon.js";
import { createLink, requireBinaries, sh } from "../support/netns.js";

/**
 * Both packages installed the way an operator installs them, then run against a served config:
 * - the npm tarball (`npm pack`) with `npm install -g` into an empty prefix: its native addons are
 *   compiled there, against this Node's headers; dependencies come from the registry (or npm's cache);
 * - the .deb (packaging/deb/build.sh) unpacked with `dpkg -x` into an empty root, and its daemon run
 *   as an unprivileged user holding only the unit's three capabilities (setpriv), as systemd would.
 *   `dpkg -i` is not run: it would add a user and files to this machine (the maintainer scripts are
 *   syntax-checked; their real run is the Debian install in the README).
 * Each: `centra-pxe validate`, `init`, `serve` in a namespace, and `doctor` against it, all from the install.
 */

const UNIT_CAPABILITIES = ["net_bind_service", "net_raw", "net_admin"];
const NOBODY = 65534;
let work: string;
let tarball: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), "packages-"));
  chmodSync(work, 0o755); // the .deb's daemon runs as nobody and reads from here
  // Packed from a copy of what the build reads, so the checkout's dist/ (prepack rebuilds it) stays as it
  // is for every other test; node_modules is the checkout's, as `npm pack` after `npm ci` would see it.
  const checkout = join(work, "checkout");
  const manifest = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { files: string[] };
  const buildInputs = ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "README.md", "src"];
  const shipped = manifest.files.filter((f) => !f.startsWith("!") && !["dist/", "npm-shrinkwrap.json"].includes(f));
  for (const entry of [
    ...buildInputs,
    ...shipped,
    "scripts/package-prepack.mjs",
    "scripts/build-info.mjs",
    "scripts/build-ui.mjs",
    "ui",
  ])
    cpSync(join(repo, entry), join(checkout, entry), { recursive: true });
  symlinkSync(join(repo, "node_modules"), join(checkout, "node_modules"));
  const out = execFileSync("npm", ["pack", "--pack-destination", work, "--loglevel=error"], {
    cwd: checkout,
    encoding: "utf8",
  });
  tarball = join(work, out.trim().split("\n").at(-1)!);
});
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const ready = (t: TestContext) => requireBinaries(t, "npm", "dpkg-deb", "setpriv", "udhcpc");

/** Entries that have no business in a package: tests, benchmarks, test data, TypeScript sources, maps. */
const notShipped = (entry: string) =>
  /(^|\/)(test|bench|testdata|src|node_modules\/\.bin)\//.test(entry) || /\.(test\.js|ts|map)$/.test(entry);

/**
 * `cli validate`, `init`, `serve` (in a fresh namespace, behind `wrap`) and `doctor` against it;
 * returns the doctor's report. The config and state live in a fresh directory under `work`.
 */
async function serveAndDoctor(cli: string, wrap: string[], owner?: number): Promise<string> {
  const link = createLink({ clientIp: null });
  const dir = mkdtempSync(join(work, "served-"));
  chmodSync(dir, 0o755);
  const net = link.serverIp.replace(/\.1$/, "");
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
dhcp:
  subnet: ${net}.0
  netmask: 255.255.255.0
  range: { start: ${net}.100, end: ${net}.150 }
  router: ${link.serverIp}
logLevel: debug
`,
  );
  mkdirSync(join(dir, "state"));
  if (owner !== undefined) chownSync(join(dir, "state"), owner, owner);
  const run = (args: string[]) => sh(wrap[0] ?? cli, [...wrap.slice(1), ...(wrap.length ? [cli] : []), ...args]);
  try {
    assert.match(run(["validate", "--config", config]), /: valid/);
    assert.match(run(["init", "--config", config, "--bootloaders", "/usr/lib/ipxe"]), /installed: .*undionly\.kpxe/);
    const daemon = link.spawnInServer(wrap[0] ?? cli, [
      ...wrap.slice(1),
      ...(wrap.length ? [cli] : []),
      "serve",
      "--config",
      config,
    ]);
    let log = "";
    daemon.stdout!.on("data", (chunk: Buffer) => (log += chunk.toString()));
    daemon.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
    await waitFor("the installed daemon to serve", () => log.includes('"msg":"serving"'), {
      ms: 60_000,
      context: () => log.slice(-3000),
    });
    const doctor = spawnSync("ip", ["netns", "exec", link.serverNs!, cli, "doctor", "--config", config], {
      encoding: "utf8",
    });
    // udhcpc asks for a unicast reply (no broadcast flag): the server must set an ARP entry for an
    // address the client does not have yet (SIOCSARP, CAP_NET_ADMIN) or fall back to broadcasting.
    const lease = link.inClient("sh", ["-c", `timeout 30 udhcpc -i ${link.clientIf} -n -q -f -s /bin/true 2>&1`]);
    const exited = new Promise<number | null>((resolve) => daemon.once("exit", (code) => resolve(code)));
    daemon.kill("SIGTERM");
    assert.equal(await exited, 0, log.slice(-3000));
    assert.equal(doctor.status, 0, `${doctor.stdout}${doctor.stderr}\nserver log:\n${log.slice(-3000)}`);
    assert.match(lease, /lease of [\d.]+ obtained/);
    assert.doesNotMatch(log, /could not set an ARP entry/, "the ARP entry for a unicast OFFER was set");
    assert.doesNotMatch(log, /EPERM|"level":(50|60)/, "no part was refused a privilege");
    return doctor.stdout;
  } finally {
    link.destroy();
  }
}

test("npm tarball: no tests inside; `npm install -g` builds the addons and the installed CLI serves", async (t) => {
  if (!ready(t)) return;
  const entries = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n");
  assert.deepEqual(entries.filter(notShipped), []);
  for (const shipped of ["dist/cli/main.js", "binding.gyp", "native/sd-notify.c", "npm-shrinkwrap.json"])
    assert.ok(entries.includes(`package/${shipped}`), `${shipped} is in the tarball`);
  assert.ok(entries.includes("package/dist/ui/index.html"), "the dashboard bundle is in the tarball");
  assert.ok(!entries.some((e) => e.startsWith("package/build/")), "no addon built on the packing machine");

  const prefix = join(work, "prefix");
  // better-sqlite3 would otherwise try a prebuilt binary from GitHub first; build it against these headers.
  const env = { ...process.env, npm_config_build_from_source: "true" };
  execFileSync(
    "npm",
    ["install", "-g", "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", tarball],
    { env, stdio: ["ignore", "ignore", "pipe"] },
  );
  const cli = join(prefix, "bin/centra-pxe");
  const installed = join(prefix, "lib/node_modules/centra-pxe");
  assert.equal(sh(cli, ["--version"]).trim(), JSON.parse(readFileSync(join(repo, "package.json"), "utf8")).version);
  for (const addon of ["udp_device_socket", "udp_transfer_socket", "sd_notify"])
    sh("test", ["-s", join(installed, `build/Release/${addon}.node`)]);
  const report = await serveAndDoctor(cli, []);
  assert.match(report, /ok +dhcp on \S+: OFFER of /);
  assert.match(report, /all \d+ checks passed/);
});

test(".deb: unit, conffile, state directory, user; unpacked, it serves as an unprivileged user with the unit's capabilities", async (t) => {
  if (!ready(t)) return;
  const out = execFileSync(join(repo, "packaging/deb/build.sh"), [work], {
    env: { ...process.env, CENTRA_PXE_TGZ: tarball },
    encoding: "utf8",
  });
  const deb = out.trim().split("\n").at(-1)!;
  const field = (name: string) => sh("dpkg-deb", ["-f", deb, name]).trim();
  assert.equal(field("Package"), "centra-pxe");
  const major = process.versions.node.split(".")[0];
  assert.match(field("Depends"), new RegExp(`nodejs \\(>= ${major}\\), nodejs \\(<< ${Number(major) + 1}\\)`));

  const control = join(work, "control");
  sh("dpkg-deb", ["-e", deb, control]);
  assert.equal(readFileSync(join(control, "conffiles"), "utf8").trim(), "/etc/centra-pxe/config.yaml");
  for (const script of ["postinst", "prerm", "postrm"]) sh("sh", ["-n", join(control, script)]);
  assert.match(readFileSync(join(control, "postinst"), "utf8"), /adduser --system --group .* centra-pxe/);

  const entries = sh("dpkg-deb", ["-c", deb]);
  for (const shipped of [
    "./lib/systemd/system/centra-pxe.service",
    "./etc/centra-pxe/config.yaml",
    "./var/lib/centra-pxe/",
    "./usr/lib/centra-pxe/node_modules/better-sqlite3/build/Release/better_sqlite3.node",
    "./usr/lib/centra-pxe/build/Release/udp_device_socket.node",
  ])
    assert.ok(entries.includes(shipped), `${shipped} is in the package`);
  assert.match(entries, /\.\/usr\/bin\/centra-pxe -> \.\.\/lib\/centra-pxe\/dist\/cli\/main\.js/);
  const paths = entries.split("\n").map((line) => line.split(/\s+/)[5] ?? "");
  // Ours only: what the dependencies ship in their own packages is theirs.
  const ours = paths.filter((p) => !p.includes("/node_modules/"));
  assert.deepEqual(
    ours.filter((p) => notShipped(p.replace(/^\.\/usr\/lib\/centra-pxe\//, ""))),
    [],
  );
  assert.deepEqual(
    paths.filter((p) => p.includes("node_modules/") && /node_modules\/(typescript|tsx|@biomejs|esbuild)\//.test(p)),
    [],
    "no devDependency",
  );

  const root = join(work, "root");
  sh("dpkg", ["-x", deb, root]);
  chmodSync(root, 0o755);
  const cli = join(root, "usr/bin/centra-pxe");
  // The shipped conffile is a valid config as it stands.
  assert.match(sh(cli, ["validate", "--config", join(root, "etc/centra-pxe/config.yaml")]), /: valid/);
  assert.equal(
    readFileSync(join(root, "lib/systemd/system/centra-pxe.service"), "utf8"),
    readFileSync(join(repo, "contrib/systemd/centra-pxe.service"), "utf8"),
  );

  const caps = UNIT_CAPABILITIES.map((c) => `+${c}`).join(",");
  const asServiceUser = [
    "setpriv",
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    "--clear-groups",
    `--inh-caps=-all,${caps}`,
    `--ambient-caps=-all,${caps}`,
    `--bounding-set=-all,${caps}`,
    "--no-new-privs",
  ];
  const report = await serveAndDoctor(cli, asServiceUser, NOBODY);
  assert.match(report, /ok +dhcp on \S+: OFFER of /);
  assert.match(report, /all \d+ checks passed/);
});
