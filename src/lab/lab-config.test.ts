import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import {
  ARM64_LAB_IMAGE,
  ARM64_LAB_MACHINE,
  HTTP_BOOT_LAB_MACHINE,
  SECURE_BOOT_LAB_MACHINES,
  SEED_LAB_MACHINES,
  foreignDhcpArguments,
  labConfigYaml,
} from "./lab-config.js";

test("the lab's generated config is valid for the real parser, with the seed's network, profiles and nodes", () => {
  const config = parseConfig(
    labConfigYaml({
      stateDir: "/var/lib/centra-pxe-lab/server",
      machines: [...SEED_LAB_MACHINES, HTTP_BOOT_LAB_MACHINE],
      dhcpMode: "server",
    }),
    "lab.yaml",
  );
  assert.equal(config.serverAddress, "10.0.100.10");
  assert.equal(config.interface, "br-lab");
  assert.deepEqual(Object.keys(config.profiles).sort(), ["all-in-one", "control-plane", "worker"]);
  assert.deepEqual(config.nodes["52:54:00:12:34:56"], {
    mac: "52:54:00:12:34:56",
    profile: "control-plane",
    hostname: "control-plane-01",
    ipAddress: "10.0.100.50",
  });
  assert.equal(config.nodes["52:54:00:12:34:5d"]?.hostname, "worker-04");
  assert.equal(config.nodes["52:54:00:12:34:60"], undefined, "node03 stays unknown so it meets the menu");
});

test("proxy mode: no fixed addresses (the foreign server owns them), and dnsmasq gets no boot options", () => {
  const config = parseConfig(
    labConfigYaml({ stateDir: "/s", machines: SEED_LAB_MACHINES, dhcpMode: "proxy" }),
    "lab.yaml",
  );
  assert.equal(config.dhcp.mode, "proxy");
  assert.equal(config.nodes["52:54:00:12:34:56"]?.ipAddress, undefined);
  const args = foreignDhcpArguments({ interface: "fdhcp0", leaseFile: "/l", pidFile: "/p" }).join(" ");
  assert.match(args, /--dhcp-range=10\.0\.100\.100,10\.0\.100\.200/);
  assert.doesNotMatch(args, /dhcp-boot|pxe-service|enable-tftp/);
});

test("Secure Boot and ARM64 machines: the node is marked secureBoot; profiles get the arm64 image on ttyAMA0", () => {
  const config = parseConfig(
    labConfigYaml({ stateDir: "/s", machines: [...SECURE_BOOT_LAB_MACHINES, ARM64_LAB_MACHINE], dhcpMode: "server" }),
    "lab.yaml",
  );
  assert.equal(config.nodes["52:54:00:12:34:62"]?.secureBoot, true);
  assert.equal(config.nodes["52:54:00:12:34:63"], undefined, "node06 stays unknown: iPXE, refused");
  assert.deepEqual(config.profiles.worker?.arches?.arm64, { image: ARM64_LAB_IMAGE, console: ["ttyAMA0,115200n8"] });
  const plain = parseConfig(labConfigYaml({ stateDir: "/s", machines: SEED_LAB_MACHINES, dhcpMode: "server" }));
  assert.equal(plain.profiles.worker?.arches, undefined);
});

test("lab up --https: http.tls with the lab's files and UEFI HTTP boot over https://; the initrd still calls back over http://", () => {
  const https = { cert: "/lab/tls/server.pem", key: "/lab/tls/server-key.pem", ca: "/lab/tls/ca.pem" };
  const config = parseConfig(
    labConfigYaml({
      stateDir: "/s",
      machines: [...SEED_LAB_MACHINES, HTTP_BOOT_LAB_MACHINE],
      dhcpMode: "server",
      https,
    }),
    "lab.yaml",
  );
  assert.equal(config.http.tls?.cert, https.cert);
  assert.equal(config.http.tls?.key, https.key);
  assert.equal(config.http.tls?.ca, https.ca);
  assert.equal(config.http.tls?.port, 443);
  assert.equal(config.http.tls?.uefiHttpBoot, true);
  assert.equal(config.provisioning.apiUrl, "http://10.0.100.10/api/v1");
  const mine = parseConfig(
    labConfigYaml({
      stateDir: "/s",
      machines: SEED_LAB_MACHINES,
      dhcpMode: "server",
      https,
      provisioning: { apiUrl: "http://192.0.2.1/api/v1" },
    }),
  );
  assert.equal(mine.provisioning.apiUrl, "http://192.0.2.1/api/v1", "the caller's own wins");
  const plain = parseConfig(labConfigYaml({ stateDir: "/s", machines: SEED_LAB_MACHINES, dhcpMode: "server" }));
  assert.equal(plain.http.tls, undefined);
  assert.equal(plain.provisioning.apiUrl, undefined);
});
