import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLink, requireBinaries } from "../support/netns.js";
import { runToEnd, serverFiles, startServerProcess, waitFor } from "./harness.js";

/**
 * proxyDHCP beside a foreign DHCP server (PRODUCT.md §3, issue 3): dnsmasq hands out the address,
 * Centra PXE in `dhcp.mode: proxy` only the boot information, on 67 and 4011. The client is real
 * firmware: the iPXE option ROM of a QEMU machine, which takes its address from one server and its
 * boot file from the other (and asks the proxy again on port 4011).
 */
describe("proxy mode with real firmware", { timeout: 240_000 }, () => {
  it("iPXE in QEMU gets its address from dnsmasq and its boot script from the proxy", async (t) => {
    if (!requireBinaries(t, "qemu-system-x86_64", "dnsmasq", "ip")) return;
    const link = createLink({ clientIp: null });
    const base = link.serverIp.replace(/\.1$/, "");
    const files = serverFiles(link, (b) => ({
      dhcp: {
        mode: "proxy",
        subnet: `${b}.0`,
        netmask: "255.255.255.0",
        range: { start: `${b}.200`, end: `${b}.210` },
      },
    }));
    const tap = `tq${link.clientIf.slice(2)}`.slice(0, 15);
    const bridge = `bq${link.clientIf.slice(2)}`.slice(0, 15);
    try {
      // The machine's NIC is a tap bridged with the client end of the link.
      link.inClient("ip", ["link", "add", bridge, "type", "bridge"]);
      link.inClient("ip", ["link", "set", link.clientIf, "master", bridge]);
      link.inClient("ip", ["tuntap", "add", tap, "mode", "tap"]);
      link.inClient("ip", ["link", "set", tap, "master", bridge]);
      link.inClient("ip", ["link", "set", tap, "up"]);
      link.inClient("ip", ["link", "set", bridge, "up"]);

      const server = await startServerProcess(link, files);
      // The foreign DHCP server: addresses only, no boot options.
      const dnsmasq = link.spawnInServer("dnsmasq", [
        "-d",
        "-C",
        "/dev/null",
        "--port=0",
        `--interface=${link.serverIf}`,
        "--bind-interfaces",
        "--no-ping",
        `--dhcp-range=${base}.100,${base}.150,255.255.255.0,1h`,
        `--dhcp-leasefile=${join(files.dir, "dnsmasq.leases")}`,
        "--log-facility=-",
      ]);
      let dnsmasqLog = "";
      dnsmasq.stdout!.on("data", (d: Buffer) => (dnsmasqLog += d.toString()));
      dnsmasq.stderr!.on("data", (d: Buffer) => (dnsmasqLog += d.toString()));
      await waitFor(
        `dnsmasq to start (${dnsmasqLog})`,
        () => (/started|DHCP, IP range/.test(dnsmasqLog) ? true : dnsmasq.exitCode !== null ? false : undefined),
        30_000,
      ).then((ok) => assert.ok(ok, dnsmasqLog));

      const qemu = link.spawnInClient("qemu-system-x86_64", [
        // Emulation, not KVM: under nested virtualisation (CI VMs) KVM guests of this iPXE reset at start.
        "-machine",
        "accel=tcg",
        "-m",
        "256",
        "-nographic",
        "-boot",
        "n",
        "-netdev",
        `tap,id=n0,ifname=${tap},script=no,downscript=no`,
        "-device",
        "virtio-net-pci,netdev=n0,mac=52:54:00:7e:57:77",
      ]);
      let console = "";
      qemu.stdout!.on("data", (d: Buffer) => (console += d.toString("latin1")));
      qemu.stderr!.on("data", (d: Buffer) => (console += d.toString("latin1")));
      const finished = runToEnd(qemu, 150_000);
      const clean = () => console.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
      try {
        await waitFor(
          () => `iPXE to show its boot file (console so far:\n${clean().slice(-1500)})`,
          () => {
            // The whole line: the console arrives in pieces, and half a file name fails the match below.
            if (/Filename: \S+\r?\n/.test(clean())) return true;
            if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}):\n${clean().slice(-1500)}`);
            return undefined;
          },
          140_000,
        );
      } finally {
        qemu.kill("SIGKILL");
        await finished;
      }
      const text = clean();
      assert.match(
        text,
        new RegExp(`net0: ${base.replace(/\./g, "\\.")}\\.1[0-5][0-9]/`),
        "the address comes from dnsmasq's range",
      );
      assert.match(
        text,
        new RegExp(`Filename: http://${link.serverIp.replace(/\./g, "\\.")}/boot/ipxe/boot\\.ipxe`),
        "the boot file comes from the proxy",
      );
      await server.stop();
    } finally {
      link.destroy();
      files.cleanup();
    }
  });
});
