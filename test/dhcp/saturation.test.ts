import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { DhcpCounters } from "../../src/dhcp/server.js";
import { createLink, requireBinaries, sh } from "../support/netns.js";
import { REPO, runToEnd, serverFiles, sleep, startServerProcess, waitFor } from "./harness.js";

/**
 * Past saturation (issue 12): "answer the clients already in progress, drop new DISCOVERs first".
 * A stranger at a second address in the client namespace floods DISCOVERs (perfdhcp as a relay,
 * `-i`: DISCOVER/OFFER only, thousands of MACs, far more per second than the server can handle)
 * while 40 clients on the link are mid-DORA: each holds an OFFER and sends its REQUEST during the
 * flood. Every one must be ACKed (one retransmission allowed, as a client's own), and the
 * DISCOVERs dropped to make room must be counted. Before intake.ts the REQUESTs queued behind the
 * flood in the kernel's buffer and most were dropped with it.
 */

/** The flood's relayed subnet (inside the test's own namespaces, so no clash between runs). */
const FLOOD_NET = "172.30";

describe("DHCP past saturation (issue 12)", { timeout: 300_000 }, () => {
  it("ACKs clients mid-DORA while a DISCOVER flood from a second address saturates it; the shed DISCOVERs are counted", async (t) => {
    if (!requireBinaries(t, "perfdhcp", "ip")) return;
    const link = createLink();
    const files = serverFiles(link, (base) => ({
      dhcp: {
        subnet: `${base}.0`,
        netmask: "255.255.255.0",
        range: { start: `${base}.10`, end: `${base}.250` },
        router: link.serverIp,
        leaseTime: "1h",
        // perfdhcp sends as a relay: its subnet is a /16, so its thousands of MACs never empty the
        // pool and every DISCOVER costs a full OFFER; the budget is not what stops it here.
        subnets: [
          {
            subnet: `${FLOOD_NET}.0.0`,
            netmask: "255.255.0.0",
            range: { start: `${FLOOD_NET}.1.0`, end: `${FLOOD_NET}.250.255` },
            router: `${FLOOD_NET}.0.1`,
          },
        ],
        relays: [`${FLOOD_NET}.0.1`],
        budgets: { newClients: { rate: 1_000_000, burst: 1_000_000 } },
      },
    }));
    let clients: ChildProcess | undefined;
    let flood: ChildProcess | undefined;
    try {
      // The stranger's second address, and the server's way back to it (replies go to giaddr).
      link.inClient("ip", ["addr", "add", `${FLOOD_NET}.0.1/16`, "dev", link.clientIf]);
      link.inClient("ip", ["route", "replace", "default", "dev", link.clientIf]);
      sh("ip", ["netns", "exec", link.serverNs!, "ip", "route", "add", `${FLOOD_NET}.0.0/16`, "dev", link.serverIf]);
      const server = await startServerProcess(link, files);

      clients = link.spawnInClient(
        process.execPath,
        ["--import", "tsx", join(REPO, "test/dhcp/mid-dora-client.ts"), "40", link.serverIp],
        { cwd: REPO },
      );
      let clientOutput = "";
      clients.stdout!.on("data", (d: Buffer) => (clientOutput += d.toString()));
      clients.stderr!.on("data", (d: Buffer) => (clientOutput += d.toString()));
      const offered = await waitFor(
        () => `the clients' OFFERs: ${clientOutput}`,
        () => /offered (\d+)/.exec(clientOutput)?.[1],
        60_000,
      );
      assert.equal(Number(offered), 40, "every client holds an OFFER before the flood");

      flood = link.spawnInClient("perfdhcp", [
        "-4",
        "-l",
        `${FLOOD_NET}.0.1`,
        "-i",
        "-R",
        "30000",
        "-r",
        "40000",
        "-p",
        "8",
        link.serverIp,
      ]);
      const floodRun = runToEnd(flood, 60_000);
      // Let the flood fill every queue between it and the handler before the REQUESTs go.
      await sleep(3_000);
      const clientsDone = runToEnd(clients, 60_000);
      clients.stdin!.write("go\n");
      await clientsDone;
      const tally = /(\{"acked".*\})/.exec(clientOutput)?.[1];
      assert.ok(tally, clientOutput);
      const { acked, naked, unanswered } = JSON.parse(tally) as { acked: number; naked: number; unanswered: number };

      const floodOutput = (await floodRun).output;
      await server.stop();
      const line = /counters (\{.*\})/.exec(server.output())?.[1];
      assert.ok(line, server.output());
      const counters = JSON.parse(line) as DhcpCounters;
      t.diagnostic(`mid-DORA clients: ${tally}; server: ${line}`);
      t.diagnostic(
        `flood: ${floodOutput
          .split("\n")
          .filter((l) => /sent packets|received packets|drops/.test(l))
          .join("; ")}`,
      );
      assert.deepEqual({ acked, naked, unanswered }, { acked: 40, naked: 0, unanswered: 0 });
      assert.ok(counters.discoversShed > 0, `the flood saturated the server and DISCOVERs were shed: ${line}`);
    } finally {
      clients?.kill("SIGKILL");
      flood?.kill("SIGKILL");
      link.destroy();
      files.cleanup();
    }
  });
});
