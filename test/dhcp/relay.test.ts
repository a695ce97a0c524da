import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { DhcpCounters } from "../../src/dhcp/server.js";
import { createLink, requireBinaries, sh } from "../support/netns.js";
import { CLIENT_SCRIPT, runToEnd, serverFiles, startServerProcess, waitFor } from "./harness.js";

/**
 * A real relay agent (ISC dhcrelay, Debian's isc-dhcp-relay) in a namespace between a second
 * subnet and ours, ISC dhclient behind it:
 *
 *   server ns ── B.1 ═══ B.2 ── relay ns (dhcrelay -iu up -id down) ── D.1 ═══ client ns (dhclient)
 *
 * dhcrelay sets giaddr to its downstream address D.1; the server serves subnet D only while D.1 is
 * in `dhcp.relays` (issue 10), and answers the relay, which hands the reply to the client.
 */
describe("DHCP through a real relay agent (dhcrelay)", { timeout: 240_000 }, () => {
  it("nothing while the relay is not in dhcp.relays; a lease from the relayed subnet once it is", async (t) => {
    if (!requireBinaries(t, "dhcrelay", "dhclient", "ip")) return;
    const link = createLink(); // server ns ↔ relay ns (its "client" end is the relay's upstream)
    const id = randomBytes(3).toString("hex");
    const clientNs = `cpd-${id}`;
    const relayDown = `rd${id}`;
    const clientIf = `rc${id}`;
    const relayed = `10.${150 + (process.pid % 50)}.${randomBytes(1)[0]! % 250}`;
    const files = serverFiles(link, (base) => ({
      dhcp: {
        subnet: `${base}.0`,
        netmask: "255.255.255.0",
        range: { start: `${base}.10`, end: `${base}.250` },
        subnets: [
          {
            subnet: `${relayed}.0`,
            netmask: "255.255.255.0",
            range: { start: `${relayed}.100`, end: `${relayed}.150` },
            router: `${relayed}.1`,
          },
        ],
        relays: [],
      },
    }));
    const inClientNs = (args: string[]) => sh("ip", ["netns", "exec", clientNs, ...args]);
    let relay: ReturnType<typeof link.spawnInClient> | undefined;
    try {
      sh("ip", ["netns", "add", clientNs]);
      sh("ip", ["link", "add", relayDown, "type", "veth", "peer", "name", clientIf]);
      sh("ip", ["link", "set", relayDown, "netns", link.clientNs]);
      sh("ip", ["link", "set", clientIf, "netns", clientNs]);
      link.inClient("ip", ["addr", "add", `${relayed}.1/24`, "dev", relayDown]);
      link.inClient("ip", ["link", "set", relayDown, "up"]);
      inClientNs(["ip", "link", "set", clientIf, "up"]);
      inClientNs(["ip", "link", "set", "lo", "up"]);
      // The server answers the relay at giaddr: it needs the way back to the relayed subnet.
      sh("ip", ["netns", "exec", link.serverNs!, "ip", "route", "add", `${relayed}.0/24`, "via", link.clientIp]);

      const server = await startServerProcess(link, files);
      // -iu: the upstream interface (towards the server), -id: downstream (towards clients); -d foreground.
      relay = link.spawnInClient("dhcrelay", [
        "-4",
        "-d",
        "--no-pid",
        "-iu",
        link.clientIf,
        "-id",
        relayDown,
        link.serverIp,
      ]);
      let relayLog = "";
      relay.stdout!.on("data", (d: Buffer) => (relayLog += d.toString()));
      relay.stderr!.on("data", (d: Buffer) => (relayLog += d.toString()));
      await waitFor(
        () => `dhcrelay to start: ${relayLog}`,
        () => (/Sending on|Listening on/.test(relayLog) ? true : undefined),
      );

      const dhclient = (timeoutSeconds: number, result: string) => {
        const conf = join(files.dir, `dhclient-${timeoutSeconds}.conf`);
        writeFileSync(conf, `timeout ${timeoutSeconds};\nretry 1;\n`);
        return runToEnd(spawnDhclient(conf, result), (timeoutSeconds + 30) * 1000);
      };
      const spawnDhclient = (conf: string, result: string) =>
        link.spawnInServer("ip", [
          "netns",
          "exec",
          clientNs,
          "dhclient",
          "-1",
          "-v",
          "-cf",
          conf,
          "-sf",
          CLIENT_SCRIPT,
          "-e",
          `CLIENT_RESULT=${result}`,
          "-pf",
          join(files.dir, "dhclient.pid"),
          "-lf",
          join(files.dir, "dhclient.leases"),
          clientIf,
        ]);

      // The relay is not trusted: dhcrelay forwards, the server drops, dhclient hears nothing.
      const refused = join(files.dir, "refused.txt");
      const first = await dhclient(8, refused);
      assert.notEqual(first.code, 0, first.output);
      assert.doesNotMatch(first.output, /DHCPOFFER of/, first.output);

      // Trust it (SIGHUP reload): the same client now gets an address of the relayed subnet.
      const config = JSON.parse(readFileSync(files.configFile, "utf8")) as { dhcp: { relays: string[] } };
      config.dhcp.relays = [`${relayed}.1`];
      writeFileSync(files.configFile, JSON.stringify(config));
      server.child.kill("SIGHUP");
      await waitFor("the reload", () => (server.output().includes("reloaded") ? true : undefined));
      const bound = join(files.dir, "bound.txt");
      const second = await dhclient(30, bound);
      assert.equal(second.code, 0, `${second.output}\nrelay: ${relayLog}`);
      const address = /BOUND ip=(\S+)/.exec(readFileSync(bound, "utf8"))?.[1];
      const last = Number(address?.split(".")[3]);
      assert.ok(
        address?.startsWith(`${relayed}.`) && last >= 100 && last <= 150,
        `an address of the relayed range, got ${address}`,
      );

      await server.stop();
      const counters = JSON.parse(/counters (\{.*\})/.exec(server.output())![1]!) as DhcpCounters;
      assert.ok(counters.untrustedRelay >= 1, JSON.stringify(counters));
    } finally {
      relay?.kill("SIGTERM");
      try {
        for (const pid of sh("ip", ["netns", "pids", clientNs]).split(/\s+/).filter(Boolean))
          process.kill(Number(pid), "SIGKILL");
        sh("ip", ["netns", "del", clientNs]);
      } catch {
        /* not created */
      }
      link.destroy();
      files.cleanup();
    }
  });
});
