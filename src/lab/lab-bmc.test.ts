import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  LAB_DISK_BANNER,
  chassisControlScript,
  ipmiSimLanConf,
  labBmcPlan,
  labDiskImage,
  newLabBmcPassword,
} from "./lab-bmc.js";
import { SEED_LAB_MACHINES } from "./lab-config.js";
import { type FirmwarePaths, machineRunPaths, qemuArguments } from "./machines.js";

const node01 = SEED_LAB_MACHINES[0]!;
const node02 = SEED_LAB_MACHINES[1]!;
const firmware: FirmwarePaths = {
  ipxeVirtioRom: "/rom",
  ovmfCode: "/code.fd",
  ovmfVarsTemplate: "/vars.fd",
  ovmfSecureBootCode: "/secboot.fd",
  ovmfSecureBootVarsTemplate: "/secboot-vars.fd",
  aavmfCode: "/aavmf-code.fd",
  aavmfVarsTemplate: "/aavmf-vars.fd",
  aavmfSecureBootCode: "/aavmf-code.ms.fd",
  aavmfSecureBootVarsTemplate: "/aavmf-vars.ms.fd",
};

test("each lab machine's BMC has its own LAN port and machine-side sockets", () => {
  const a = labBmcPlan(node01, 0, "ipmi", "/lab/bmc", "10.0.100.10");
  const b = labBmcPlan(node02, 1, "ipmi", "/lab/bmc", "10.0.100.10");
  const r = labBmcPlan(node02, 1, "redfish", "/lab/bmc", "10.0.100.10");
  assert.notEqual(a.port, b.port);
  assert.notEqual(a.serialPort, b.serialPort);
  assert.notEqual(a.ipmiVmPort, b.ipmiVmPort);
  assert.equal(r.ipmiVmPort, undefined, "a Redfish machine has no ipmi_sim VM interface");
  assert.equal(a.dir, "/lab/bmc/node01");
  assert.match(newLabBmcPassword(), /^[0-9a-f]{16}$/);
});

test("ipmi_sim's lan.conf: LAN on the bridge address, the chassis program, the VM interface and SOL to COM1", () => {
  const bmc = labBmcPlan(node01, 0, "ipmi", "/lab/bmc", "10.0.100.10");
  const conf = ipmiSimLanConf(node01, bmc, "secret", "/lab/bmc/node01/chassis-control");
  assert.match(conf, /^\s+addr 10\.0\.100\.10 6230$/m);
  assert.match(conf, /^\s+chassis_control "\/lab\/bmc\/node01\/chassis-control 0x20"$/m);
  assert.match(conf, new RegExp(`^\\s+serial 15 127\\.0\\.0\\.1 ${bmc.ipmiVmPort} codec VM$`, "m"));
  assert.match(conf, new RegExp(`^\\s+sol "tcp:127\\.0\\.0\\.1:${bmc.serialPort}" 115200$`, "m"));
  assert.match(conf, /^\s+user 2 true "admin" "secret" admin 10 md5$/m);
  assert.throws(() => ipmiSimLanConf(node01, { ...bmc, dir: "x" }, "p", '/a"b'), /quote/);
});

test("QEMU behind a BMC: the NIC leads the boot order only for PXE, COM1 is a socket that logs, the KCS BMC is ipmi_sim", () => {
  const bmc = labBmcPlan(node01, 0, "ipmi", "/lab/bmc", "10.0.100.10");
  const paths = { ...machineRunPaths("/lab/machines", node01), pidFile: bmc.pidFile };
  const wiring = {
    serialPort: bmc.serialPort,
    ipmiVmPort: bmc.ipmiVmPort!,
    qmpSocket: bmc.qmpSocket,
    diskImage: bmc.diskImage,
  };
  const pxe = qemuArguments(node01, firmware, paths, "tcg", undefined, { ...wiring, bootDevice: "pxe" }).join(" ");
  const disk = qemuArguments(node01, firmware, paths, "tcg", undefined, { ...wiring, bootDevice: "disk" }).join(" ");
  assert.match(pxe, /romfile=\/rom,bootindex=1/);
  assert.match(pxe, /-boot order=n/);
  assert.doesNotMatch(disk, /bootindex/);
  assert.match(disk, /-boot order=c/);
  for (const args of [pxe, disk]) {
    assert.match(args, /-daemonize/);
    assert.match(
      args,
      new RegExp(
        `-chardev socket,id=com1,host=127\\.0\\.0\\.1,port=${bmc.serialPort},server=on,wait=off,logfile=/lab/machines/node01\\.serial\\.log`,
      ),
    );
    assert.match(args, /-serial chardev:com1/);
    assert.match(args, /-device ipmi-bmc-extern,chardev=ipmi0,id=bmc0 -device isa-ipmi-kcs,bmc=bmc0/);
    assert.match(args, /file=\/lab\/bmc\/node01\/disk\.img,format=raw,if=virtio,readonly=on/);
  }
  const plain = qemuArguments(node01, firmware, machineRunPaths("/lab/machines", node01), "tcg").join(" ");
  assert.match(plain, /-serial file:\/lab\/machines\/node01\.serial\.log/);
  assert.doesNotMatch(plain, /daemonize|ipmi|qmp/, "a machine without a BMC is as before");
});

test("the lab disk is a BIOS boot sector that prints the banner", () => {
  const disk = labDiskImage();
  assert.equal(disk.length, 1024 * 1024);
  assert.equal(disk[510], 0x55);
  assert.equal(disk[511], 0xaa);
  assert.ok(disk.subarray(0, 510).includes(Buffer.from(LAB_DISK_BANNER)));
  // mov si, imm16 points at the message, inside the sector loaded at 0x7c00.
  const si = disk.readUInt16LE(8) - 0x7c00;
  assert.equal(disk.subarray(si + 2, si + 2 + LAB_DISK_BANNER.length).toString("latin1"), LAB_DISK_BANNER);
});

test("the chassis program answers ipmi_sim's get and set, and keeps the boot device (run by /bin/sh)", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "centra-chassis-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bmc = labBmcPlan(node01, 0, "ipmi", dir, "10.0.100.10");
  const script = join(dir, "chassis");
  writeFileSync(
    script,
    chassisControlScript(node01, { ...bmc, pidFile: join(dir, "qemu.pid"), bootFile: join(dir, "boot") }),
  );
  const run = (...args: string[]) => spawnSync("sh", [script, "0x20", ...args], { encoding: "utf8" });
  assert.equal(run("get", "power").stdout, "power:0\n");
  assert.equal(run("get", "boot").stdout, "boot:default\n");
  assert.equal(run("set", "boot", "pxe").status, 0);
  assert.equal(readFileSync(join(dir, "boot"), "utf8"), "pxe\n");
  assert.equal(run("get", "power", "boot").stdout, "power:0\nboot:pxe\n");
  // A pid file of a process that is not QEMU is not a powered-on machine.
  writeFileSync(join(dir, "qemu.pid"), `${process.pid}\n`);
  assert.equal(run("get", "power").stdout, "power:0\n");
  assert.equal(run("set", "power", "0").status, 0, "power off of an off machine is fine");
  assert.equal(run("set", "identify", "15", "0").status, 0);
  const bad = run("get", "temperature");
  assert.notEqual(bad.status, 0);
  assert.match(bad.stdout, /Invalid parameter/);
});
