import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeCpioNewc } from "./cpio.js";
import { labInitScript, resolveModuleLoadOrder } from "./initrd.js";
import {
  LabFirmware,
  qemuArguments,
  qemuBinaryOf,
  varsTemplateOf,
  type FirmwarePaths,
  type LabMachine,
} from "./machines.js";

/** Read back a newc archive: enough of a decoder to check what the kernel will see. */
function decodeNewc(bytes: Buffer): { name: string; mode: number; data: Buffer }[] {
  const out: { name: string; mode: number; data: Buffer }[] = [];
  let at = 0;
  for (;;) {
    assert.equal(at % 4, 0, "every record starts 4-byte aligned");
    const head = bytes.subarray(at, at + 110).toString("ascii");
    assert.equal(head.slice(0, 6), "070701");
    const field = (i: number) => Number.parseInt(head.slice(6 + i * 8, 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const name = bytes.subarray(at + 110, at + 110 + nameSize - 1).toString("utf8");
    let dataAt = at + 110 + nameSize;
    dataAt += (4 - (dataAt % 4)) % 4;
    out.push({ name, mode, data: bytes.subarray(dataAt, dataAt + size) });
    at = dataAt + size + ((4 - (size % 4)) % 4);
    if (name === "TRAILER!!!") return out;
  }
}

test("cpio newc: files, directories, symlinks and the trailer, aligned", () => {
  const archive = encodeCpioNewc([
    { kind: "directory", path: "bin" },
    { kind: "file", path: "/init", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "odd", data: Buffer.from("abcde") },
  ]);
  const entries = decodeNewc(archive);
  assert.deepEqual(
    entries.map((e) => e.name),
    ["bin", "init", "bin/sh", "odd", "TRAILER!!!"],
  );
  assert.equal(entries[1]!.mode, 0o100755);
  assert.equal(entries[1]!.data.toString(), "#!/bin/sh\n");
  assert.equal(entries[2]!.data.toString(), "busybox");
  assert.equal(entries[3]!.data.toString(), "abcde");
});

test("modules load dependencies first, each once, and skip what the kernel builds in", () => {
  const dep = [
    "kernel/drivers/virtio/virtio_ring.ko:",
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
    "kernel/net/core/failover.ko.xz:",
    "kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko.xz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
  ].join("\n");
  assert.deepEqual(resolveModuleLoadOrder(dep, ["virtio_pci", "virtio_net", "e1000"]), [
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/net/core/failover.ko.xz",
    "kernel/drivers/net/virtio_net.ko",
  ]);
});

test("the init script calls back to the baked-in server and powers off", () => {
  const script = labInitScript({ serverAddress: "10.0.100.10", modules: ["kernel/net/core/failover.ko.xz"] });
  assert.match(script, /^#!\/bin\/busybox sh/);
  assert.match(script, /insmod \/lib\/modules\/\$m/);
  assert.match(script, /for m in failover\.ko;/);
  assert.match(script, /server="10\.0\.100\.10"/);
  assert.match(script, /\/api\/v1\/nodes\/callback\?mac=\$mac&token=\$token/);
  assert.match(script, /poweroff -f\n$/);
});

const firmware: FirmwarePaths = {
  ipxeVirtioRom: "/rom",
  ovmfCode: "/code.fd",
  ovmfVarsTemplate: "/vars.fd",
  ovmfSecureBootCode: "/secboot.fd",
  ovmfSecureBootVarsTemplate: "/ms-vars.fd",
  aavmfCode: "/aavmf-code.fd",
  aavmfVarsTemplate: "/aavmf-vars.fd",
  aavmfSecureBootCode: "/aavmf-code.ms.fd",
  aavmfSecureBootVarsTemplate: "/aavmf-vars.ms.fd",
};
const paths = {
  serialLog: "/run/n.log",
  pidFile: "/run/n.pid",
  ovmfVars: "/run/n.vars",
  serconPortFile: "/run/sercon",
};

test("BIOS machines get the iPXE ROM on a modern virtio NIC and a serial console for option ROMs", () => {
  const machine: LabMachine = {
    name: "node01",
    mac: "52:54:00:12:34:56",
    firmware: LabFirmware.BiosIpxeRom,
    tap: "tap-node01",
    expect: { menu: true },
  };
  const args = qemuArguments(machine, firmware, paths, "tcg").join(" ");
  assert.match(args, /-machine pc /);
  assert.match(args, /virtio-net-pci,disable-legacy=on,netdev=net0,mac=52:54:00:12:34:56,romfile=\/rom/);
  assert.match(args, /name=etc\/sercon-port,file=\/run\/sercon/);
  assert.doesNotMatch(args, /pflash/);
});

test("UEFI machines use OVMF's own network stack; HTTP boot turns PXE off", () => {
  const pxe: LabMachine = {
    name: "node02",
    mac: "52:54:00:12:34:5d",
    firmware: LabFirmware.UefiPxe,
    tap: "t",
    expect: { menu: true },
  };
  const pxeArgs = qemuArguments(pxe, firmware, paths, "kvm").join(" ");
  assert.match(pxeArgs, /readonly=on,file=\/code\.fd/);
  assert.match(pxeArgs, /unit=1,file=\/run\/n\.vars/);
  assert.match(pxeArgs, /romfile=,/);
  assert.match(pxeArgs, /-cpu host/);
  assert.doesNotMatch(pxeArgs, /IPv4PXESupport/);
  const http = qemuArguments({ ...pxe, firmware: LabFirmware.UefiHttp }, firmware, paths, "tcg").join(" ");
  assert.match(http, /opt\/org\.tianocore\/IPv4PXESupport,string=n/);
  assert.match(http, /opt\/org\.tianocore\/IPv6PXESupport,string=n/);
  assert.doesNotMatch(http, /cacerts/, "no CA unless the lab has one");
  // lab up --https: the lab's CA reaches OVMF's TLS CA store through fw_cfg.
  const trusting = qemuArguments(
    { ...pxe, firmware: LabFirmware.UefiHttp },
    { ...firmware, httpsCaCerts: "/lab/tls/ca.esl" },
    paths,
    "tcg",
  ).join(" ");
  assert.match(trusting, /-fw_cfg name=etc\/edk2\/https\/cacerts,file=\/lab\/tls\/ca\.esl/);
});

test("Secure Boot machines get OVMF's Secure Boot build with SMM, locked flash and Microsoft's keys", () => {
  const machine: LabMachine = {
    name: "node05",
    mac: "52:54:00:12:34:62",
    firmware: LabFirmware.UefiSecureBoot,
    tap: "t",
    expect: { refused: true },
  };
  const args = qemuArguments(machine, firmware, paths, "tcg").join(" ");
  assert.match(args, /-machine q35,smm=on /);
  assert.match(args, /-global driver=cfi\.pflash01,property=secure,value=on/);
  assert.match(args, /readonly=on,file=\/secboot\.fd/);
  assert.equal(varsTemplateOf(machine, firmware), "/ms-vars.fd");
  assert.equal(varsTemplateOf({ ...machine, firmware: LabFirmware.UefiPxe }, firmware), "/vars.fd");
  const plain = qemuArguments({ ...machine, firmware: LabFirmware.UefiPxe }, firmware, paths, "tcg").join(" ");
  assert.doesNotMatch(plain, /smm=on|property=secure/);
});

test("ARM64 machines: qemu-system-aarch64, the virt board under TCG, AAVMF's flash, IPv4 PXE only", () => {
  const machine: LabMachine = {
    name: "node07",
    mac: "52:54:00:12:34:64",
    firmware: LabFirmware.Arm64Pxe,
    tap: "t",
    expect: { menu: true },
  };
  assert.equal(qemuBinaryOf(machine), "qemu-system-aarch64");
  const args = qemuArguments(machine, firmware, paths, "kvm").join(" ");
  assert.match(args, /-accel tcg -machine virt -cpu cortex-a57/, "no KVM for another architecture");
  assert.match(args, /unit=0,readonly=on,file=\/aavmf-code\.fd/);
  assert.match(args, /unit=1,file=\/run\/n\.vars/);
  assert.match(args, /IPv6PXESupport,string=n/);
  assert.equal(varsTemplateOf(machine, firmware), "/aavmf-vars.fd");
  assert.equal(qemuBinaryOf({ ...machine, firmware: LabFirmware.UefiPxe }), "qemu-system-x86_64");
});
