import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { configSchema, normalizeConfig } from "../../src/config/schema.js";
import { cachedBootloaders } from "../../src/boot/bootloaders.js";
import { httpBootBase } from "../../src/boot/firmware.js";
import { createDhcpService, type Sighting } from "../../src/dhcp/index.js";
import { MemoryLeaseStore } from "../support/memory-lease-store.js";
import { pino } from "pino";
import { silentLogger } from "../../src/log.js";
import { createLink, requireBinaries } from "../support/netns.js";
import { CLIENT_SCRIPT, REPO, runToEnd, serverFiles, waitFor } from "./harness.js";
import type { RawStep } from "./raw-client.js";

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
    const seen: Sighting[] = [];
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
        link.spawnInClient(
          "udhcpc",
          [
            "-f",
            "-q",
            "-n",
            "-i",
            link.clientIf,
            "-s",
            CLIENT_SCRIPT,
            "-t",
            "10",
            "-T",
            "2",
            "-V",
            "PXEClient:Arch:00007:UNDI:003016",
            "-x",
            "0x5d:0007",
          ],
          {
            env: { ...process.env, CLIENT_RESULT: result },
          },
        ),
        60_000,
      );
      assert.equal(run.code, 0, run.output);
      const line = readFileSync(result, "utf8");
      assert.match(line, new RegExp(`bound ip=${base.replace(/\./g, "\\.")}\\.9 hostname=from-inventory`));
      assert.match(line, new RegExp(`boot_file=ipxe\\.efi siaddr=${link.serverIp.replace(/\./g, "\\.")}`));
      assert.ok(
        seen.some((s) => s.mac === mac && s.firmware === "efi-x64" && s.arch === 7),
        JSON.stringify(seen),
      );
      assert.equal(leases.rows.get(`${base}.9`)?.mac, mac);
      // addressOf (issue 10): the reservation counts once ACKed; any spelling of the MAC; strangers have none.
      assert.equal(service.addressOf(mac), `${base}.9`);
      assert.equal(service.addressOf(mac.toUpperCase().replace(/:/g, "-")), `${base}.9`);
      assert.equal(service.addressOf("52:54:00:7e:57:62"), undefined);
      assert.ok(service.counters.received >= 2 && service.counters.commits >= 1);
    } finally {
      await service.stop();
      link.destroy();
      files.cleanup();
    }
  });

  it("proxy mode: addressOf is the address a machine last asked the site's DHCP server for, seen in its broadcast REQUEST", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink({ serverInRoot: true });
    const files = serverFiles(link);
    const base = link.serverIp.replace(/\.1$/, "");
    const input = JSON.parse(readFileSync(files.configFile, "utf8")) as { dhcp: Record<string, unknown> };
    input.dhcp.mode = "proxy";
    const config = normalizeConfig(configSchema.parse(input) as Parameters<typeof normalizeConfig>[0]);
    const service = createDhcpService({
      config,
      logger: silentLogger,
      leases: new MemoryLeaseStore(),
      bootloaders: cachedBootloaders(() => join(config.stateDir, "ipxe")),
      bootBaseUrl: (c) => httpBootBase(c.serverAddress, c.http.port),
    });
    const mac = "52:54:00:7e:57:63";
    try {
      await service.start();
      assert.equal(service.addressOf(mac), undefined);
      // The installer's DHCP client (not a PXE client) takes an address from the site's server.
      const steps: RawStep[] = [
        { send: [{ mac, type: "Request", requested: `${base}.77`, serverId: `${base}.254` }], waitMs: 300 },
      ];
      const stepsFile = join(files.dir, "steps.json");
      writeFileSync(stepsFile, JSON.stringify(steps));
      link.inClient("ip", ["route", "replace", "default", "dev", link.clientIf]);
      const run = await runToEnd(
        link.spawnInClient(process.execPath, ["--import", "tsx", join(REPO, "test/dhcp/raw-client.ts"), stepsFile], {
          cwd: REPO,
        }),
        60_000,
      );
      assert.match(run.output, /done/, run.output);
      await waitFor("the claim", () => service.addressOf(mac));
      assert.equal(service.addressOf(mac), `${base}.77`);
      assert.equal(service.addressOf("52:54:00:7e:57:64"), undefined);
    } finally {
      await service.stop();
      link.destroy();
      files.cleanup();
    }
  });

  it("a stranger forging 300 MACs of odd lengths (hlen 3) gets a handful of warn lines, not one per MAC", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink({ serverInRoot: true });
    const files = serverFiles(link);
    const base = link.serverIp.replace(/\.1$/, "");
    const input = JSON.parse(readFileSync(files.configFile, "utf8")) as Record<string, unknown>;
    const config = normalizeConfig(configSchema.parse(input) as Parameters<typeof normalizeConfig>[0]);
    const warnings: string[] = [];
    const logger = pino(
      { level: "warn" },
      { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) },
    );
    const service = createDhcpService({
      config,
      logger,
      leases: new MemoryLeaseStore(),
      bootloaders: cachedBootloaders(() => join(config.stateDir, "ipxe")),
      bootBaseUrl: (c) => httpBootBase(c.serverAddress, c.http.port),
    });
    try {
      await service.start();
      // INIT-REBOOT REQUESTs (option 50, no server id, no ciaddr) from MACs the server never saw:
      // each is a notable silence (RFC 2131 §4.3.2) whose text holds the MAC. A 3-byte MAC is not
      // the 6-byte form, so the old rate limit keyed each one apart: a warn line per forged MAC.
      const send = Array.from({ length: 300 }, (_, i) => ({
        mac: `0a:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`,
        type: "Request" as const,
        requested: `${base}.${100 + (i % 50)}`,
      }));
      const stepsFile = join(files.dir, "steps.json");
      writeFileSync(stepsFile, JSON.stringify([{ send, waitMs: 500 }] satisfies RawStep[]));
      link.inClient("ip", ["route", "replace", "default", "dev", link.clientIf]);
      const run = await runToEnd(
        link.spawnInClient(process.execPath, ["--import", "tsx", join(REPO, "test/dhcp/raw-client.ts"), stepsFile], {
          cwd: REPO,
        }),
        60_000,
      );
      assert.match(run.output, /done/, run.output);
      await waitFor("the forged requests", () => (service.counters.received >= 250 ? true : undefined));
      assert.ok(warnings.length >= 1, "the silence is still reported");
      assert.ok(warnings.length <= 5, `${warnings.length} warn lines:\n${warnings.slice(0, 10).join("\n")}`);
    } finally {
      await service.stop();
      link.destroy();
      files.cleanup();
    }
  });
});
