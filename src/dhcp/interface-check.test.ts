import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import { silentLogger } from "../log.js";
import { createDhcpService } from "./index.js";
import { interfaceRefusal } from "./interface-check.js";

const config = parseConfig("interface: eno1\nserverAddress: 10.0.100.10\n");
const eno1 = (address: string, netmask = "255.255.255.0") => ({
  lo: [{ family: "IPv4", address: "127.0.0.1", netmask: "255.0.0.0" }],
  eno1: [
    { family: "IPv6", address: "fe80::1", netmask: "ffff:ffff:ffff:ffff::" },
    { family: "IPv4", address, netmask },
  ],
});

test("server mode answers where the interface carries serverAddress in exactly dhcp.subnet", () => {
  assert.equal(interfaceRefusal(config, eno1("10.0.100.10")), undefined);
});

test("server mode refuses an interface whose address the config does not declare (the rogue-DHCP case)", () => {
  assert.equal(
    interfaceRefusal(config, eno1("192.168.1.10")),
    "no subnet declaration for eno1 (192.168.1.10/24): it does not carry serverAddress 10.0.100.10, so this config was written for another network; fix interface, serverAddress and dhcp.subnet, or add the address to eno1",
  );
});

test("server mode refuses an interface whose network is not dhcp.subnet/netmask", () => {
  assert.equal(
    interfaceRefusal(config, eno1("10.0.100.10", "255.255.0.0")),
    "no subnet declaration for eno1's network 10.0.0.0/16 (dhcp.subnet declares 10.0.100.0/24): the pool and router would not fit the link; make dhcp.subnet and netmask match 10.0.0.0/16",
  );
});

test("server mode refuses an interface with no IPv4 address, or none at all", () => {
  assert.match(
    interfaceRefusal(config, { lo: eno1("x").lo }) ?? "",
    /^no subnet declaration for eno1: it has no IPv4 address \(or does not exist; this host has: lo\); give it serverAddress 10\.0\.100\.10 in 10\.0\.100\.0\/24 \(ip addr add 10\.0\.100\.10\/24 dev eno1\)/,
  );
});

test("proxy and off modes hand out no addresses and are not checked", () => {
  for (const mode of ["proxy", "off"]) {
    const other = parseConfig(`interface: eno1\nserverAddress: 192.168.1.10\ndhcp: { mode: ${mode} }\n`);
    assert.equal(interfaceRefusal(other, eno1("10.9.9.9")), undefined);
  }
});

test("the DHCP service refuses to start before opening a socket, and refuses a reload onto another network", async () => {
  const interfaces = { current: eno1("10.0.100.10") };
  const service = createDhcpService({
    config,
    logger: silentLogger,
    leases: { loadLeases: async () => [], saveLeases: async () => {} },
    bootloaders: () => new Set(),
    bootBaseUrl: () => "http://10.0.100.10/boot/ipxe",
    interfaces: () => interfaces.current,
  });
  const moved = parseConfig(
    "interface: eno1\nserverAddress: 10.0.200.10\ndhcp: { subnet: 10.0.200.0, range: { start: 10.0.200.100, end: 10.0.200.200 } }\n",
  );
  assert.throws(
    () => service.check?.(moved),
    /^Error: DHCP refuses to serve: no subnet declaration for eno1 \(10\.0\.100\.10\/24\)/,
  );
  assert.doesNotThrow(() => service.check?.(config));

  interfaces.current = eno1("192.168.1.10");
  await assert.rejects(
    service.start(),
    /DHCP refuses to serve: no subnet declaration for eno1 \(192\.168\.1\.10\/24\)/,
  );
  assert.equal(service.health().ok, false, "nothing listens");
});
