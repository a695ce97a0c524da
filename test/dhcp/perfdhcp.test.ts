import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { decode, hardwareAddress, messageType } from "../../src/dhcp/packet.js";
import { MessageType } from "../../src/dhcp/options.js";
import { formatIpv4 } from "../../src/config/primitives.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";
import { killHard, leasesIn, runToEnd, serverFiles, sleep, startServerProcess } from "./harness.js";
import { readPcap } from "../../src/files/pcap.js";

/**
 * perfdhcp (Kea's load generator, acting as a relay) against the server: no address is ever
 * acknowledged to two clients, also across a `kill -9` and restart under load (PRODUCT.md §6).
 */

function perfdhcp(link: TestLink, args: string[]) {
  return link.spawnInClient("perfdhcp", ["-4", "-l", link.clientIf, ...args, link.serverIp]);
}

/**
 * perfdhcp sends as a relay (giaddr = its own address), so the server must trust that address
 * (`dhcp.relays`, issue 10); its DISCOVERs come from up to `-R` new MACs at once.
 */
function trustingPerfdhcp(link: TestLink) {
  return serverFiles(link, (base) => ({
    dhcp: {
      subnet: `${base}.0`,
      netmask: "255.255.255.0",
      range: { start: `${base}.10`, end: `${base}.250` },
      router: link.serverIp,
      dns: [link.serverIp],
      leaseTime: "1h",
      relays: [link.clientIp],
    },
  }));
}

function nonUnique(output: string): number[] {
  return [...output.matchAll(/non unique addresses: (\d+)/g)].map((m) => Number(m[1]));
}

/** Start tcpdump in the client namespace and resolve once it is capturing. */
async function capture(link: TestLink, file: string) {
  const child = link.spawnInClient("tcpdump", [
    "-i",
    link.clientIf,
    "-w",
    file,
    "-U",
    "-n",
    "udp port 67 or udp port 68",
  ]);
  let err = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 30_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGINT");
      }),
  };
}

describe("perfdhcp load", { timeout: 300_000 }, () => {
  it("finishes with no non-unique address and one lease per client", async (t) => {
    if (!requireBinaries(t, "perfdhcp", "ip")) return;
    const link = createLink();
    const files = trustingPerfdhcp(link);
    try {
      const server = await startServerProcess(link, files);
      const run = await runToEnd(perfdhcp(link, ["-R", "200", "-r", "500", "-p", "5"]), 60_000);
      assert.ok(/Rate: [\d.]+ 4-way exchanges\/second/.test(run.output), run.output);
      assert.deepEqual(nonUnique(run.output), [0, 0], run.output);
      const received = [...run.output.matchAll(/received packets: (\d+)/g)].map((m) => Number(m[1]));
      assert.ok(received.length === 2 && received.every((n) => n > 100), `too few answers:\n${run.output}`);
      await server.stop();
      const bound = leasesIn(files.dbFile).filter((l) => l.state === "bound");
      assert.ok(bound.length > 0 && bound.length <= 200);
      assert.equal(new Set(bound.map((l) => l.mac)).size, bound.length, "one address per client");
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("kill -9 under load, restart: every ACK on the wire is on disk and no address went to two MACs", async (t) => {
    if (!requireBinaries(t, "perfdhcp", "tcpdump", "ip")) return;
    const link = createLink();
    const files = trustingPerfdhcp(link);
    const pcap = join(files.dir, "load.pcap");
    try {
      const tap = await capture(link, pcap);
      let server = await startServerProcess(link, files);
      const first = runToEnd(
        perfdhcp(link, ["-R", "100", "-r", "400", "-p", "10", "-b", "mac=00:0c:01:00:00:00"]),
        120_000,
      );
      await sleep(3000);
      await killHard(server);
      const killedAt = Date.now();
      server = await startServerProcess(link, files);
      const firstRun = await first;
      assert.deepEqual(nonUnique(firstRun.output), [0, 0], firstRun.output);
      // New clients after the restart: had the server forgotten an acknowledged lease, they would get it.
      const second = await runToEnd(
        perfdhcp(link, ["-R", "100", "-r", "200", "-p", "4", "-b", "mac=00:0c:02:00:00:00"]),
        120_000,
      );
      assert.deepEqual(nonUnique(second.output), [0, 0], second.output);
      await server.stop();
      await sleep(500);
      await tap.stop();

      const acked = new Map<string, Set<string>>();
      let acks = 0;
      for (const d of readPcap(pcap)) {
        if (d.sourcePort !== 67 || d.source !== link.serverIp) continue;
        const p = decode(d.payload);
        if (messageType(p) !== MessageType.Ack) continue;
        acks++;
        const address = formatIpv4(p.yiaddr);
        const macs = acked.get(address) ?? new Set<string>();
        macs.add(hardwareAddress(p));
        acked.set(address, macs);
      }
      assert.ok(acks > 200, `expected load, saw ${acks} ACKs`);
      for (const [address, macs] of acked)
        assert.equal(macs.size, 1, `${address} was acknowledged to ${[...macs].join(", ")}`);
      const onDisk = new Map(leasesIn(files.dbFile).map((l) => [l.address, l.mac]));
      for (const [address, macs] of acked)
        assert.equal(onDisk.get(address), [...macs][0], `ACK of ${address} is not on disk`);
      assert.ok(Date.now() > killedAt);
    } finally {
      link.destroy();
      files.cleanup();
    }
  });
});
