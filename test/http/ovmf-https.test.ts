// test-lane: vm
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LAB_BRIDGE, LAB_SERVER_ADDRESS } from "../../src/lab/lab-config.js";
import { LabFirmware, type LabMachine, findFirmware, machineRunPaths, qemuArguments } from "../../src/lab/machines.js";
import { createLabNetwork, destroyLabNetwork } from "../../src/lab/network.js";
import { plainText } from "../../src/lab/progress.js";
import { decodeSignatureLists, EFI_CERT_X509_GUID } from "../../src/tls/signature-list.js";
import { cliArgs, prepareState, repo, waitFor } from "../support/daemon.js";
import { isCI, requireBinaries } from "../support/netns.js";

/**
 * UEFI HTTP boot over https:// on real firmware (issue 17): OVMF (Debian's OVMF_CODE_4M.fd) in
 * QEMU, its own HTTP boot stack (no iPXE ROM, PXE off), our CA handed to it as an
 * EFI_SIGNATURE_LIST through fw_cfg `etc/edk2/https/cacerts` (the file `centra-pxe tls init`
 * writes), and `centra-pxe serve` with `http.tls.uefiHttpBoot: true` in a namespace of its own:
 * the DHCP answer names https://…/ipxe.efi, the firmware downloads it over TLS 1.2 from our
 * listener, and iPXE goes on to our scripts. One VM.
 */

const namespace = `covh-${randomBytes(3).toString("hex")}`;
const dir = mkdtempSync(join(tmpdir(), "ovmf-https-"));
const machine: LabMachine = {
  name: "https01",
  mac: "52:54:00:17:44:01",
  firmware: LabFirmware.UefiHttp,
  tap: "tap-https01",
  expect: { profile: "control-plane", hostname: "https-01" },
};
const children: ChildProcess[] = [];

after(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  destroyLabNetwork(namespace);
  if (!process.env.KEEP_VM_LOGS) rmSync(dir, { recursive: true, force: true });
});

test("OVMF HTTP boot downloads our bootloader over HTTPS, trusting our CA from fw_cfg, and goes on to our script", {
  timeout: 420_000,
}, async (t) => {
  if (!requireBinaries(t, "ip", "qemu-system-x86_64", "openssl")) return;
  const firmware = findFirmware();
  const absent = [firmware.ovmfCode, firmware.ovmfVarsTemplate, "/usr/lib/ipxe/ipxe.efi"].filter((f) => !existsSync(f));
  if (absent.length) {
    if (isCI) throw new Error(`missing ${absent.join(", ")} (scripts/bootstrap installs ovmf, ipxe)`);
    t.skip(`missing ${absent.join(", ")}`);
    return;
  }

  const stateDir = join(dir, "state");
  const tls = join(stateDir, "tls");
  const made = spawnSync(
    process.execPath,
    cliArgs(["tls", "init", "--dir", tls, "--address", LAB_SERVER_ADDRESS, "--json"]),
    { cwd: repo, encoding: "utf8" },
  );
  assert.equal(made.status, 0, made.stderr);
  const esl = readFileSync(join(tls, "ca.esl"));
  assert.deepEqual(
    decodeSignatureLists(esl).map((e) => e.type),
    [EFI_CERT_X509_GUID],
  );

  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      `interface: ${LAB_BRIDGE}`,
      `serverAddress: ${LAB_SERVER_ADDRESS}`,
      `stateDir: ${stateDir}`,
      "dhcp:",
      "  mode: server",
      "  subnet: 10.0.100.0",
      "  netmask: 255.255.255.0",
      "  range: { start: 10.0.100.100, end: 10.0.100.200 }",
      // No TFTP at all: HTTP boot must not need it.
      "tftp: { enabled: false }",
      "http:",
      `  tls: { cert: ${join(tls, "server.pem")}, key: ${join(tls, "server-key.pem")}, ca: ${join(tls, "ca.pem")}, uefiHttpBoot: true }`,
      "boot: { menuTimeout: 2s }",
      "profiles:",
      "  control-plane: { image: nixos }",
      "  worker: { image: nixos }",
      "  all-in-one: { image: nixos }",
      "nodes:",
      `  "${machine.mac}": { profile: control-plane, hostname: https-01 }`,
      "",
    ].join("\n"),
  );
  prepareState(config, { kernel: Buffer.alloc(4096, 1), initrd: Buffer.alloc(4096, 2) });

  createLabNetwork({ namespace, bridge: LAB_BRIDGE, serverCidr: `${LAB_SERVER_ADDRESS}/24`, taps: [machine.tap] });
  const server = spawn(
    "ip",
    ["netns", "exec", namespace, process.execPath, ...cliArgs(["serve", "--config", config])],
    {
      cwd: repo,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  children.push(server);
  let log = "";
  server.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  server.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  await waitFor("the server to serve", () => log.includes('"msg":"serving"'), { context: () => log.slice(-3000) });
  assert.match(log, /HTTPS boot service listening/);

  const paths = machineRunPaths(dir, machine);
  copyFileSync(firmware.ovmfVarsTemplate, paths.ovmfVars);
  const started = Date.now();
  const vm = spawn(
    "ip",
    [
      ...["netns", "exec", namespace, "qemu-system-x86_64"],
      // Our CA through fw_cfg etc/edk2/https/cacerts, as the lab's `lab up --https` gives it.
      ...qemuArguments(machine, { ...firmware, httpsCaCerts: join(tls, "ca.esl") }, paths, "tcg"),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  children.push(vm);
  let qemuErrors = "";
  vm.stderr!.on("data", (d: Buffer) => (qemuErrors += d.toString()));
  const serial = () => (existsSync(paths.serialLog) ? plainText(readFileSync(paths.serialLog, "latin1")) : "");
  const scriptFor = new RegExp(
    `"mac":"${machine.mac}"[^\\n]*"msg":"boot script"|"msg":"boot script"[^\\n]*"mac":"${machine.mac}"`,
  );
  await waitFor("the machine's script to be asked for after an HTTPS download of ipxe.efi", () => scriptFor.test(log), {
    ms: 360_000,
    context: () => `qemu: ${qemuErrors}\nserial:\n${serial().slice(-3000)}\nserver:\n${log.slice(-2000)}`,
  });
  t.diagnostic(`OVMF HTTPS boot to our script took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const console = serial();
  assert.match(console, /URI: https:\/\/10\.0\.100\.10\/boot\/ipxe\/ipxe\.efi/, console.slice(-3000));
  assert.doesNotMatch(console, /URI: http:\/\//, "the firmware never loaded over plain HTTP");
});
