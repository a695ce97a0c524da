// test-lane: vm
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { encodeCpioNewc } from "../../src/lab/cpio.js";
import { silentLogger } from "../../src/log.js";
import { cliArgs, repo } from "../support/daemon.js";
import { findBinary, isCI } from "../support/netns.js";

/**
 * `centra-pxe ipxe build` end to end (issue 17): iPXE compiled from the vendored source with our
 * embedded script and CA, installed into stateDir/ipxe, then booted. One compile per file: the
 * build's cache directory is shared by the tests here (the second build must find everything in
 * it), and the VM boots what the first one installed.
 *
 * The VM: SeaBIOS, whose NIC ROM (Debian's iPXE) loads our undionly.kpxe over QEMU's TFTP; ours
 * ignores the DHCP filename and chains by its embedded script to https://10.0.2.2:<tls port>/
 * boot/ipxe/boot.ipxe (QEMU's user network maps 10.0.2.2 to the host's loopback, where the
 * service listens), trusting only our CA, then script, kernel and initrd over HTTPS.
 */

/** The iPXE source; in CI the repository is cloned next to `shared`. */
const SOURCE = process.env.CENTRA_PXE_IPXE_SOURCE || join(repo, "../shared/vendor/ipxe-src.tar.xz");
const KERNEL = readdirSync("/boot")
  .filter((f) => f.startsWith("vmlinuz-"))
  .sort()
  .map((f) => join("/boot", f))[0];
const FILES = { biosRom: "/usr/lib/ipxe/qemu/pxe-virtio.rom", busybox: "/bin/busybox" };
const MAC = "52:54:00:17:00:01";

const work = mkdtempSync(join(tmpdir(), "ipxe-build-"));
const stateDir = join(work, "state");
/**
 * The build cache: fresh per run in CI (the compile is part of what is tested); a developer may point
 * CENTRA_PXE_IPXE_CACHE at a kept one, and then only the embedded script and CA are rebuilt.
 */
const cacheDir = process.env.CENTRA_PXE_IPXE_CACHE || join(work, "cache");
const configFile = join(work, "config.yaml");
let service: HttpService | undefined;
let origin = "";

function missing(): string[] {
  const absent = [SOURCE, ...Object.values(FILES)].filter((f) => !existsSync(f));
  for (const bin of ["make", "gcc", "perl", "openssl", "qemu-system-x86_64"]) if (!findBinary(bin)) absent.push(bin);
  if (!KERNEL) absent.push("/boot/vmlinuz-* (linux-image-amd64)");
  return absent;
}

function haveTools(t: TestContext): boolean {
  const absent = missing();
  if (absent.length === 0) return true;
  if (isCI) throw new Error(`missing ${absent.join(", ")}: required under CI (scripts/bootstrap installs them)`);
  t.skip(`missing ${absent.join(", ")}`);
  return false;
}

before(async () => {
  if (missing().length) return;
  const version = join(stateDir, "images", "nixos", "1");
  mkdirSync(version, { recursive: true });
  writeFileSync(join(version, "kernel"), readFileSync(KERNEL!));
  writeFileSync(join(version, "initrd"), reportingInitrd());
  symlinkSync("1", join(stateDir, "images", "nixos", "current"));
  // The certificate is for 10.0.2.2, the address the VM reaches us at.
  await cli(["tls", "init", "--state-dir", stateDir, "--address", "10.0.2.2", "--json"]);
  const tls = join(stateDir, "tls");
  writeFileSync(
    configFile,
    [
      `stateDir: ${stateDir}`,
      "serverAddress: 10.0.2.2",
      "dhcp: { mode: off }",
      "http:",
      "  port: 0",
      "  bindAddress: 127.0.0.1",
      // plainHttp: bootloaders: a script or image asked for over plain HTTP would be refused, and
      // the boot below would fail; it proves the machine fetched everything over HTTPS.
      `  tls: { port: 0, cert: ${join(tls, "server.pem")}, key: ${join(tls, "server-key.pem")}, ca: ${join(tls, "ca.pem")}, plainHttp: bootloaders }`,
      "profiles:",
      "  control-plane: { image: nixos }",
      "  worker: { image: nixos }",
      "  all-in-one: { image: nixos }",
      "nodes:",
      `  "${MAC}": { profile: control-plane, hostname: built-01 }`,
      "",
    ].join("\n"),
  );
  service = createHttpService({ config: parseConfig(readFileSync(configFile, "utf8")), logger: silentLogger });
  await service.start();
  origin = `https://10.0.2.2:${service.tlsAddress()!.port}`;
});

after(async () => {
  await service?.stop();
  if (!process.env.KEEP_VM_LOGS) rmSync(work, { recursive: true, force: true });
});

/** `centra-pxe ARGS` from source, under `nice` (a compile on a shared CI box); stdout and stderr. */
function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("nice", [process.execPath, ...cliArgs(args)], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("close", (code) =>
      code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`centra-pxe ${args.join(" ")}: ${code}\n${stderr}`)),
    );
  });
}

const buildArgs = () => [
  "ipxe",
  "build",
  "--config",
  configFile,
  "--source",
  SOURCE,
  "--cache-dir",
  cacheDir,
  "--targets",
  "undionly.kpxe,ipxe.efi",
  "--url",
  origin,
];

interface BuildOutput {
  compileMs: number;
  installed: string[];
  unchanged: string[];
  manifest: {
    options: { entryUrl: string; trustedCaSha256: string | null };
    files: Record<string, { sha256: string; size: number }>;
  };
}

// A first compile costs ~4.5 min of CPU: 4 min on an idle 2-core runner, 20 on one shared by many jobs.
test("ipxe build compiles the BIOS and UEFI targets with our script and CA, shows progress, installs them with a manifest", {
  timeout: 1_500_000,
}, async (t) => {
  if (!haveTools(t)) return;
  const started = Date.now();
  const { stdout, stderr } = await cli(buildArgs());
  t.diagnostic(`first build (compile) took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  // Progress: compact lines parsed from make's output, not make's thousands of lines.
  assert.match(stderr, /undionly\.kpxe, ipxe\.efi: compiling, \d+ objects done: bin/);
  assert.ok(stderr.split("\n").length < 60, `progress stays compact: ${stderr.split("\n").length} lines`);
  assert.match(
    stdout,
    new RegExp(`chains to ${origin}/boot/ipxe/machine\\.ipxe trusting http\\.tls's CA; compiled in`),
  );
  const manifest = JSON.parse(
    readFileSync(join(stateDir, "ipxe", "centra-build.json"), "utf8"),
  ) as BuildOutput["manifest"];
  const ca = readFileSync(join(stateDir, "tls", "ca.pem"));
  assert.equal(manifest.options.entryUrl, `${origin}/boot/ipxe/boot.ipxe`);
  assert.equal(manifest.options.trustedCaSha256, createHash("sha256").update(ca).digest("hex"));
  for (const name of ["undionly.kpxe", "ipxe.efi"]) {
    const bytes = readFileSync(join(stateDir, "ipxe", name));
    assert.equal(manifest.files[name]!.sha256, createHash("sha256").update(bytes).digest("hex"), name);
    // The embedded script is in the image as text (iPXE embeds it uncompressed before zbin packs
    // BIOS images, so look in the EFI one only).
    if (name === "ipxe.efi")
      assert.ok(bytes.includes(`chain --autofree --replace ${origin}/boot/ipxe/machine.ipxe?mac=\${netX/mac:hexhyp}`));
  }
});

test("a second build with the same source and options compiles nothing", { timeout: 120_000 }, async (t) => {
  if (!haveTools(t)) return;
  const before = readFileSync(join(stateDir, "ipxe", "undionly.kpxe"));
  const { stdout } = await cli([...buildArgs(), "--json"]);
  const output = JSON.parse(stdout) as BuildOutput;
  assert.equal(output.compileMs, 0, "no make ran");
  assert.deepEqual(output.installed, []);
  assert.deepEqual(output.unchanged.sort(), ["ipxe.efi", "undionly.kpxe"]);
  assert.ok(readFileSync(join(stateDir, "ipxe", "undionly.kpxe")).equals(before));
});

test("a BIOS machine boots our undionly.kpxe, whose embedded script keeps the PXE ROM's address and chains over HTTPS to the machine's script and kernel", {
  timeout: 300_000,
}, async (t) => {
  if (!haveTools(t)) return;
  const started = Date.now();
  const output = await boot(/CENTRA-CMDLINE: [^\r\n]*\r?\n/);
  t.diagnostic(`boot to the initrd took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.match(output, /Centra PXE iPXE build [0-9a-f]{12} on pcbios\/i386/, "our build ran its embedded script");
  // The DHCPACK the ROM got is our iPXE's cached DHCP: its script waits for the link, not for a
  // DORA. (The ROM's own DHCP, "Configuring (net0 …)", comes before our build's first line.)
  const ours = output.slice(output.search(/Centra PXE iPXE build/));
  assert.match(ours, /Waiting for link-up on net0/, "kept the address the PXE ROM leased");
  assert.doesNotMatch(ours, /Configuring \(net0/, "no second DHCP");
  assert.match(output, new RegExp(`${origin.replace(/\./g, "\\.")}/boot/images/nixos/1/kernel`), "kernel over https");
  assert.doesNotMatch(output, /http:\/\/10\.0\.2\.2/, "nothing over plain HTTP");
  assert.match(output, /centra\.hostname=built-01/);
});

/** SeaBIOS + Debian's virtio ROM → TFTP undionly.kpxe (ours) → our script; serial until `until`. */
async function boot(until: RegExp, timeoutMs = 240_000): Promise<string> {
  const serial = join(work, "bios.serial");
  // SeaBIOS mirrors option-ROM text to this I/O port (COM1) when there is no VGA: "sercon".
  writeFileSync(join(work, "sercon-port"), Buffer.from([0xf8, 0x03]));
  const vm = spawn(
    "qemu-system-x86_64",
    [
      ...["-accel", "tcg", "-m", "512", "-smp", "1", "-machine", "pc"],
      ...["-display", "none", "-vga", "none", "-monitor", "none", "-no-reboot", "-serial", `file:${serial}`],
      ...["-netdev", `user,id=n0,tftp=${join(stateDir, "ipxe")},bootfile=undionly.kpxe`],
      // The ROM's PCI header names the modern virtio-net: the device must be modern-only.
      ...["-device", `virtio-net-pci,disable-legacy=on,netdev=n0,mac=${MAC},romfile=${FILES.biosRom},bootindex=1`],
      ...["-fw_cfg", `name=etc/sercon-port,file=${join(work, "sercon-port")}`],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  vm.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => vm.once("exit", () => resolve()));
  let done = false;
  void exited.then(() => (done = true));
  const read = () => (existsSync(serial) ? readFileSync(serial, "latin1").replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, "") : "");
  const deadline = Date.now() + timeoutMs;
  try {
    while (!done && !until.test(read()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  } finally {
    if (!done) vm.kill("SIGKILL");
    await exited;
  }
  const output = read();
  assert.match(
    output,
    until,
    `serial console never showed ${until} (qemu: ${stderr.trim() || "no errors"})\n${output.slice(-3000)}`,
  );
  return output;
}

/** busybox and an /init that prints the kernel command line and powers off. */
function reportingInitrd(): Buffer {
  const init = [
    "#!/bin/busybox sh",
    "/bin/busybox mkdir -p /proc",
    "/bin/busybox mount -t proc proc /proc",
    'echo "CENTRA-CMDLINE: $(/bin/busybox cat /proc/cmdline)"',
    "/bin/busybox poweroff -f",
    "",
  ].join("\n");
  return encodeCpioNewc([
    { kind: "directory", path: "bin" },
    { kind: "file", path: "bin/busybox", data: readFileSync(FILES.busybox), mode: 0o755 },
    { kind: "file", path: "init", data: Buffer.from(init), mode: 0o755 },
  ]);
}
