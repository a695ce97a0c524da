import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { configSchema, normalizeConfig } from "../../src/config/schema.js";
import { cachedBootloaders } from "../../src/boot/bootloaders.js";
import { httpBootBase } from "../../src/boot/firmware.js";
import { createDhcpService, type SeenClient } from "../../src/dhcp/index.js";
import { MemoryLeaseStore } from "../../src/dhcp/lease-store.js";
import { silentLogger } from "../../src/log.js";
import { createLink, requireBinaries } from "../support/netns.js";
import { CLIENT_SCRIPT, runToEnd, serverFiles } from "./harness.js";

/**
 * The service as the daemon runs it, in-process on the root-namespace end of a veth: the observer
 * hook, the `lookupNode` override, PXE boot fields seen by a real client, health and counters.
 */
describe("createDhcpService in-process", { timeout: 120_000 }, () => {
  it("tells the observer about a UEFI PXE client and answers with the bootloader; lookupNode wins over config", async (t) => {
    if (!requireBinaries(t, "udhcpc", "ip")) return;
    const link = createLink({ serverInRoot: true, clientIp: null });
    const files = serverFiles(link);
    const mac = "52:54:00:7e:57:61";
    const base = link.serverIp.replace(/\.1$/, "");
    const input = JSON.parse(readFileSync(files.configFile, "utf8")) as Record<string, unknown>;
    input.nodes = { [mac]: { profile: "worker", hostname: "from-config" } };
    const config = normalizeConfig(configSchema.parse(input) as Parameters<typeof normalizeConfig>[0]);
    const seen: SeenClient[] = [];
    const leases = new MemoryLeaseStore();
    const service = createDhcpService({
      config,
      logger: silentLogger,
      leases,
      observer: (s) => seen.push(s),
      bootloaders: cachedBootloaders(() => join(config.stateDir, "ipxe")),
    bootBaseUrl: (c) => httpBootBase(c.serverAddress, c.http.port),
    lookupNode: (m) => (m === mac ? { hostname: "from-inventory", ipAddress: `${base}.9` } : undefined),
    });
    try {
      assert.equal(service.health().ok, false, "not healthy before start");
      await service.start();
      assert.equal(service.health().ok, true);
      link.inClient("ip", ["link", "set", link.clientIf, "address", mac]);
      const result = join(files.dir, "pxe.txt");
      // Option 93 = 7 (UEFI x64) and the PXE vendor class, as OVMF sends them.
      const run = await runToEnd(
        link.spawnInClient("udhcpc", ["-f", "-q", "-n", "-i", link.clientIf, "-s", CLIENT_SCRIPT, "-t", "10", "-T", "2", "-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"], {
          env: { ...process.env, CLIENT_RESULT: result },
        }),
        60_000,
      );
      assert.equal(run.code, 0, run.output);
      const line = readFileSync(result, "utf8");
      assert.match(line, new RegExp(`bound ip=${base.replace(/\./g, "\\.")}\\.9 hostname=from-inventory`));
      assert.match(line, new RegExp(`boot_file=ipxe\\.efi siaddr=${link.serverIp.replace(/\./g, "\\.")}`));
      assert.ok(seen.some((s) => s.mac === mac && s.firmware === "efi-x64" && s.arch === 7), JSON.stringify(seen));
      assert.equal(leases.rows.get(`${base}.9`)?.mac, mac);
      assert.ok(service.counters.received >= 2 && service.counters.commits >= 1);
    } finally {
      await service.stop();
      link.destroy();
      files.cleanup();
    }
  });
});
