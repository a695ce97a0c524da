import { test, before, after, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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
import { parseConfig } from "../../src/config/load.js";
import { createHttpService, type HttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";
import { findBinary, isCI } from "../support/netns.js";

/**
 * Our iPXE scripts run by real iPXE (Debian's ipxe-qemu option ROMs) in QEMU, BIOS and UEFI, down
 * to a real Linux kernel that prints the command line it got. QEMU's user-mode network hands out
 * the entry script's URL by DHCP and maps 10.0.2.2 to the host's loopback, where the service
 * listens: no root, no namespaces, no DHCP part needed.
 *
 * TCG, never KVM: under nested KVM the ROM's timer stalls at "Press Ctrl-B" (seen on this CI),
 * and TCG boots a kernel to /init in well under a minute.
 */

const KERNEL = readdirSync("/boot")
  .filter((f) => f.startsWith("vmlinuz-"))
  .sort()
  .map((f) => join("/boot", f))[0];
const FILES = {
  biosRom: "/usr/lib/ipxe/qemu/pxe-virtio.rom",
  efiRom: "/usr/lib/ipxe/qemu/efi-virtio.rom",
  ovmf: "/usr/share/qemu/OVMF.fd",
  busybox: "/bin/busybox",
};
const KNOWN_MAC = "52:54:00:12:34:56";
const UNKNOWN_MAC = "52:54:00:aa:bb:cc";
/** A node whose image lacks its initrd: every download of it fails. */
const BROKEN_MAC = "52:54:00:12:34:57";

const work = mkdtempSync(join(tmpdir(), "ipxe-qemu-"));
let service: HttpService | undefined;

before(async () => {
  if (missing().length) return;
  const version = join(work, "state", "images", "nixos", "1");
  mkdirSync(version, { recursive: true });
  writeFileSync(join(version, "kernel"), readFileSync(KERNEL!));
  writeFileSync(join(version, "initrd"), reportingInitrd());
  symlinkSync("1", join(work, "state", "images", "nixos", "current"));
  mkdirSync(join(work, "state", "images", "broken", "1"), { recursive: true });
  writeFileSync(join(work, "state", "images", "broken", "1", "kernel"), readFileSync(KERNEL!));
  symlinkSync("1", join(work, "state", "images", "broken", "current"));
  // SeaBIOS mirrors option-ROM text to this I/O port (COM1) when there is no VGA: "sercon".
  writeFileSync(join(work, "sercon-port"), Buffer.from([0xf8, 0x03]));
  const config = parseConfig(`
stateDir: ${join(work, "state")}
http: { port: 0, bindAddress: 127.0.0.1 }
boot: { menuTimeout: 2s }
profiles:
  control-plane: { image: nixos }
  worker: { image: nixos }
  all-in-one: { image: nixos }
  broken: { image: broken }
nodes:
  "${KNOWN_MAC}": { profile: control-plane, hostname: control-plane-01 }
  "${BROKEN_MAC}": { profile: broken, hostname: broken-01 }
`);
  service = createHttpService({ config, logger: silentLogger });
  await service.start();
});

after(async () => {
  await service?.stop();
  if (!process.env.KEEP_VM_LOGS) rmSync(work, { recursive: true, force: true });
});

function missing(): string[] {
  const absent = Object.values(FILES).filter((f) => !existsSync(f));
  if (!findBinary("qemu-system-x86_64")) absent.push("qemu-system-x86_64");
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

/**
 * Boot one VM until its serial console shows `until` (then stop it) or it powers off. Returns the
 * serial output with terminal escapes removed.
 */
async function boot(
  name: string,
  firmware: "bios" | "efi",
  mac: string,
  until: RegExp,
  timeoutMs = 240_000,
): Promise<string> {
  const serial = join(work, `${name}.serial`);
  const port = service!.address()!.port;
  const nic =
    firmware === "efi"
      ? [
          "-machine",
          "q35",
          "-bios",
          FILES.ovmf,
          "-device",
          `virtio-net-pci,netdev=n0,mac=${mac},romfile=${FILES.efiRom},bootindex=1`,
        ]
      : [
          "-machine",
          "pc",
          // The ROM's PCI header names the modern virtio-net (1af4:1041); SeaBIOS runs a ROM only
          // on a device with matching IDs, so the device must be modern-only.
          "-device",
          `virtio-net-pci,disable-legacy=on,netdev=n0,mac=${mac},romfile=${FILES.biosRom},bootindex=1`,
          "-fw_cfg",
          `name=etc/sercon-port,file=${join(work, "sercon-port")}`,
        ];
  const vm = spawn(
    "qemu-system-x86_64",
    [
      "-accel",
      "tcg",
      "-m",
      "512",
      "-smp",
      "1",
      "-display",
      "none",
      "-vga",
      "none",
      "-monitor",
      "none",
      "-no-reboot",
      "-serial",
      `file:${serial}`,
      "-netdev",
      `user,id=n0,bootfile=http://10.0.2.2:${port}/boot/ipxe/boot.ipxe`,
      ...nic,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  vm.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => vm.once("exit", () => resolve()));
  const read = () => (existsSync(serial) ? readFileSync(serial, "latin1").replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, "") : "");
  const deadline = Date.now() + timeoutMs;
  let done = false;
  void exited.then(() => (done = true));
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
    `${name}: serial console never showed ${until} (qemu: ${stderr.trim() || "no errors"})\n${output.slice(-3000)}`,
  );
  return output;
}

for (const firmware of ["bios", "efi"] as const) {
  test(`real iPXE (${firmware}) boots a known node's kernel with its parameters`, { timeout: 300_000 }, async (t) => {
    if (!haveTools(t)) return;
    const output = await boot(`known-${firmware}`, firmware, KNOWN_MAC, /CENTRA-CMDLINE: [^\r\n]*\r?\n/);
    const cmdline = /CENTRA-CMDLINE: ([^\r\n]*)/.exec(output)![1]!.trim().split(/\s+/);
    for (const word of [
      "centra.profile=control-plane",
      "centra.hostname=control-plane-01",
      "console=tty0",
      "console=ttyS0,115200n8",
    ]) {
      assert.ok(cmdline.includes(word), `${word} in ${cmdline.join(" ")}`);
    }
    // The EFI stub found the initrd because of initrd=; without it /init would never have run.
    assert.equal(cmdline.includes("initrd=initrd"), firmware === "efi");
    assert.doesNotMatch(output, /Unable to mount root fs|Kernel panic/);
  });
}

test("real iPXE shows the seed's menu to an unknown machine, times out to the local disk, and ends in the shell", {
  timeout: 300_000,
}, async (t) => {
  if (!haveTools(t)) return;
  // No disk in this VM: the local-disk boot fails, and that must end in words and a shell.
  const output = await boot(
    "unknown-bios",
    "bios",
    UNKNOWN_MAC,
    /Centra PXE: failed while booting from the local disk/,
  );
  assert.match(output, /Centra Cloud - Bare-Metal Provisioning/);
  assert.match(output, /Control Plane Node \(All Services\)/);
});

test("real iPXE on UEFI: the menu's local-disk default hands control back to the firmware", {
  timeout: 300_000,
}, async (t) => {
  if (!haveTools(t)) return;
  const output = await boot(
    "unknown-efi",
    "efi",
    UNKNOWN_MAC,
    /Centra PXE: booting from the local disk[\s\S]*(BdsDxe|Shell>|Boot Manager|failed while)/,
  );
  assert.match(output, /Centra Cloud - Bare-Metal Provisioning/);
  assert.doesNotMatch(
    output,
    /failed while booting from the local disk/,
    "exit returns to the firmware; it does not fail in iPXE",
  );
});

test("real iPXE retries a failing download, then says what failed and opens the shell", {
  timeout: 300_000,
}, async (t) => {
  if (!haveTools(t)) return;
  const output = await boot("broken-bios", "bios", BROKEN_MAC, /Centra PXE: failed while downloading the initrd/);
  assert.match(output, /the initrd: attempt 1 of 3 failed, retrying in 5 seconds/);
  assert.match(output, /the initrd: attempt 2 of 3 failed, retrying in 5 seconds/);
  assert.doesNotMatch(output, /attempt 3 of 3 failed/, "the last failure goes straight to the message");
});

/** A newc cpio with busybox and an /init that prints the kernel command line and powers off. */
function reportingInitrd(): Buffer {
  const init = [
    "#!/bin/busybox sh",
    "/bin/busybox mkdir -p /proc",
    "/bin/busybox mount -t proc proc /proc",
    'echo "CENTRA-CMDLINE: $(/bin/busybox cat /proc/cmdline)"',
    "/bin/busybox poweroff -f",
    "",
  ].join("\n");
  const entries: { name: string; mode: number; data: Buffer }[] = [
    { name: "bin", mode: 0o040755, data: Buffer.alloc(0) },
    { name: "bin/busybox", mode: 0o100755, data: readFileSync(FILES.busybox) },
    { name: "init", mode: 0o100755, data: Buffer.from(init) },
    { name: "TRAILER!!!", mode: 0, data: Buffer.alloc(0) },
  ];
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const parts: Buffer[] = [];
  entries.forEach((entry, index) => {
    const name = Buffer.from(`${entry.name}\0`);
    const fields = [index + 1, entry.mode, 0, 0, 1, 0, entry.data.length, 0, 0, 0, 0, name.length, 0];
    const header = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, "0")).join("")}`, "ascii");
    parts.push(header, name, pad4(header.length + name.length), entry.data, pad4(entry.data.length));
  });
  return Buffer.concat(parts);
}
