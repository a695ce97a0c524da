import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { DhcpCounters } from "../../src/dhcp/server.js";
import { createLink, requireBinaries, type TestLink } from "../support/netns.js";
import {
  CLIENT_SCRIPT,
  leasesIn,
  REPO,
  runToEnd,
  serverFiles,
  startServerProcess,
  type ServerFiles,
  type ServerProcess,
} from "./harness.js";
import { buildRequest, type RawStep } from "./raw-client.js";

/**
 * Issue 10, item 3, done as the attacker did it: a stranger on the provisioning link (a second
 * address in the client namespace) forges DHCP packets with any chaddr, giaddr and message type.
 * Each test failed against the server before the fix. Plus a real relay agent (ISC dhcrelay)
 * between a second subnet and ours, which is served only when it is listed in `dhcp.relays`.
 */

interface RawReply {
  step: number;
  type: string;
  mac: string;
  yiaddr: string;
}

/** Run the forged `steps` from the client namespace; the replies it heard, per step. */
async function forge(link: TestLink, files: ServerFiles, steps: RawStep[]): Promise<RawReply[]> {
  // 255.255.255.255 needs a route out; the namespace has only its link.
  link.inClient("ip", ["route", "replace", "default", "dev", link.clientIf]);
  const stepsFile = join(files.dir, `steps-${randomBytes(3).toString("hex")}.json`);
  writeFileSync(stepsFile, JSON.stringify(steps));
  const run = await runToEnd(
    link.spawnInClient(process.execPath, ["--import", "tsx", join(REPO, "test/dhcp/raw-client.ts"), stepsFile], {
      cwd: REPO,
    }),
    120_000,
  );
  assert.match(run.output, /done/, run.output);
  return run.output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as RawReply);
}

/** Stop the server and read the counters it prints on SIGTERM. */
async function stopWithCounters(server: ServerProcess): Promise<DhcpCounters> {
  await server.stop();
  const line = /counters (\{.*\})/.exec(server.output())?.[1];
  assert.ok(line, server.output());
  return JSON.parse(line) as DhcpCounters;
}

const randomMac = (i: number) =>
  `02:00:5e:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;

describe("DHCP trust boundaries against a forging stranger (issue 10)", { timeout: 300_000 }, () => {
  it("INIT-REBOOTs from 101 random MACs get no answer and bind nothing; the pool still offers its first address", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink();
    const files = serverFiles(link);
    const base = link.serverIp.replace(/\.1$/, "");
    try {
      const server = await startServerProcess(link, files);
      const flood = Array.from({ length: 101 }, (_, i) => ({
        mac: randomMac(i),
        type: "Request" as const,
        requested: `${base}.${10 + i}`,
      }));
      const replies = await forge(link, files, [
        { send: flood, waitMs: 2_000 },
        { send: [{ mac: "02:00:5e:00:ff:01", type: "Discover" }], waitMs: 2_000 },
      ]);
      assert.deepEqual(
        replies.filter((r) => r.step === 0),
        [],
        "RFC 2131 §4.3.2: no record, no answer",
      );
      assert.deepEqual(
        replies.filter((r) => r.step === 1).map((r) => `${r.type} ${r.yiaddr}`),
        [`OFFER ${base}.10`],
      );
      await server.stop();
      assert.deepEqual(
        leasesIn(files.dbFile).filter((l) => l.state === "bound"),
        [],
      );
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("dhclient with a lease file naming an address we never gave it: its INIT-REBOOT gets no ACK; it falls back to DISCOVER", async (t) => {
    if (!requireBinaries(t, "dhclient", "ip")) return;
    const link = createLink({ clientIp: null });
    const files = serverFiles(link);
    const base = link.serverIp.replace(/\.1$/, "");
    try {
      const server = await startServerProcess(link, files);
      link.inClient("ip", ["link", "set", link.clientIf, "address", "52:54:00:7e:57:c1"]);
      const leaseFile = join(files.dir, "dhclient.leases");
      // What a machine moved from another network (or an attacker) has on disk: INIT-REBOOT asks for it.
      writeFileSync(
        leaseFile,
        `lease {\n  interface "${link.clientIf}";\n  fixed-address ${base}.77;\n  option subnet-mask 255.255.255.0;\n` +
          `  renew 4 2037/01/01 00:00:00;\n  rebind 4 2037/01/01 00:00:00;\n  expire 4 2037/01/01 00:00:00;\n}\n`,
      );
      const conf = join(files.dir, "dhclient.conf");
      writeFileSync(conf, "reboot 4;\ntimeout 40;\n");
      const result = join(files.dir, "result.txt");
      const run = await runToEnd(
        link.spawnInClient("dhclient", [
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
          leaseFile,
          link.clientIf,
        ]),
        90_000,
      );
      // INIT-REBOOT: no answer, so dhclient gives up on it and DISCOVERs (before: an ACK at once).
      assert.match(run.output, /DHCPREQUEST for \S+\.77 on [^\n]*\nDHCPDISCOVER /, run.output);
      // Through DORA it may still get that address: option 50 in a DISCOVER is a hint we honour when the address is free.
      assert.match(run.output, /DHCPOFFER of (\S+) from[^\n]*\nDHCPREQUEST for \1 [^\n]*\nDHCPACK of \1 /, run.output);
      assert.equal(run.code, 0, run.output);
      const bound = /BOUND ip=(\S+)/.exec(readFileSync(result, "utf8"))?.[1];
      await server.stop();
      assert.equal(leasesIn(files.dbFile).find((l) => l.address === bound)?.mac, "52:54:00:7e:57:c1");
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("a stranger's DECLINEs quarantine nothing and do not turn another client's REQUEST into a NAK", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink();
    const files = serverFiles(link);
    const base = link.serverIp.replace(/\.1$/, "");
    const victim = "52:54:00:7e:57:a1";
    try {
      const server = await startServerProcess(link, files);
      const declineAll = Array.from({ length: 100 }, (_, i) => ({
        mac: "02:00:5e:00:00:66",
        type: "Decline" as const,
        requested: `${base}.${20 + i}`,
        serverId: link.serverIp,
      }));
      const replies = await forge(link, files, [
        { send: [{ mac: victim, type: "Discover" }], waitMs: 1_500 },
        {
          send: [
            { mac: "02:00:5e:00:00:66", type: "Decline", requested: `${base}.10`, serverId: link.serverIp },
            ...declineAll,
          ],
          waitMs: 1_500,
        },
        { send: [{ mac: victim, type: "Request", requested: `${base}.10`, serverId: link.serverIp }], waitMs: 2_000 },
      ]);
      assert.deepEqual(
        replies.map((r) => `${r.step} ${r.type} ${r.yiaddr}`),
        [`0 OFFER ${base}.10`, `2 ACK ${base}.10`],
      );
      await server.stop();
      const leases = leasesIn(files.dbFile);
      assert.deepEqual(
        leases.filter((l) => l.state === "declined"),
        [],
        "nothing quarantined",
      );
      assert.equal(leases.find((l) => l.address === `${base}.10`)?.mac, victim);
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("a local client forging giaddr gets no lease from a relayed subnet; the drop is counted", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink();
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
          },
        ],
      },
    }));
    try {
      const server = await startServerProcess(link, files);
      const mac = "02:00:5e:00:00:77";
      await forge(link, files, [
        { send: [{ mac, type: "Discover", giaddr: `${relayed}.1` }], waitMs: 1_000 },
        // It need not see the OFFER: the pool is predictable, so it asks for the first address outright.
        {
          send: [
            { mac, type: "Request", giaddr: `${relayed}.1`, requested: `${relayed}.100`, serverId: link.serverIp },
          ],
          waitMs: 1_500,
        },
      ]);
      const counters = await stopWithCounters(server);
      assert.deepEqual(
        leasesIn(files.dbFile).filter((l) => l.address.startsWith(`${relayed}.`)),
        [],
      );
      assert.equal(counters.untrustedRelay, 2);
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("a flood of new MACs beyond dhcp.budgets.newClients is dropped and counted; a known machine is still served", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink();
    const known = "52:54:00:7e:57:b1";
    const files = serverFiles(link, (base) => ({
      dhcp: {
        subnet: `${base}.0`,
        netmask: "255.255.255.0",
        range: { start: `${base}.10`, end: `${base}.250` },
        budgets: {
          newClients: { rate: 1, burst: 20, perMacBurst: 2, perMacInterval: "1m" },
          sightings: { rate: 1, burst: 10, perMacBurst: 2, perMacInterval: "1m" },
        },
      },
      nodes: { [known]: { profile: "worker", ipAddress: `${base}.5` } },
    }));
    const base = link.serverIp.replace(/\.1$/, "");
    try {
      const server = await startServerProcess(link, files, { DHCP_PRINT_SEEN: "1" });
      const flood = Array.from({ length: 300 }, (_, i) => ({
        mac: randomMac(i),
        type: "Discover" as const,
        vendor: "PXEClient:Arch:00000:UNDI:002001",
      }));
      const replies = await forge(link, files, [
        { send: flood, waitMs: 1_500 },
        { send: [{ mac: known, type: "Discover", vendor: "PXEClient:Arch:00000:UNDI:002001" }], waitMs: 2_000 },
      ]);
      const offers = replies.filter((r) => r.step === 0 && r.type === "OFFER");
      assert.ok(offers.length >= 20 && offers.length <= 40, `${offers.length} offers to the flood (burst 20, 1/s)`);
      assert.deepEqual(
        replies.filter((r) => r.step === 1).map((r) => `${r.type} ${r.mac} ${r.yiaddr}`),
        [`OFFER ${known} ${base}.5`],
      );
      const counters = await stopWithCounters(server);
      assert.ok(counters.newClientsDropped >= 250, JSON.stringify(counters));
      const sightings = server
        .output()
        .split("\n")
        .filter((l) => l.startsWith("seen ")).length;
      assert.ok(sightings <= 20, `${sightings} sightings passed to the inventory`);
      assert.ok(counters.sightingsDropped >= 1, JSON.stringify(counters));
    } finally {
      link.destroy();
      files.cleanup();
    }
  });
  it("a request past 9,000 bytes is refused whole, however long (9,001, 60,000); 9,000 is answered; empty and junk datagrams in a burst are counted", async (t) => {
    if (!requireBinaries(t, "ip")) return;
    const link = createLink();
    const files = serverFiles(link);
    try {
      const server = await startServerProcess(link, files);
      // The server reads up to 64 datagrams per recvmmsg, each into 9,001 bytes (the longest
      // request it takes, plus one): a longer one arrives cut, and must still be refused as too
      // long, not decoded from its first bytes (a DISCOVER's End option comes early; the rest is
      // padding here). 500 datagrams of junk fill several reads around them.
      const padded = (mac: string, length: number) => {
        const discover = buildRequest({ mac, type: "Discover" }, 7);
        return Buffer.concat([discover, Buffer.alloc(length - discover.length)]);
      };
      const datagrams = [
        Buffer.alloc(0),
        padded("52:54:00:7e:90:00", 9_000),
        padded("52:54:00:7e:90:01", 9_001),
        padded("52:54:00:7e:90:02", 60_000),
        ...Array.from({ length: 500 }, () => Buffer.alloc(300, 0x41)),
      ];
      const datagramsFile = join(files.dir, "datagrams.json");
      writeFileSync(datagramsFile, JSON.stringify(datagrams.map((d) => d.toString("base64"))));
      const sender = `
        const dgram = require("node:dgram");
        const datagrams = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
        const socket = dgram.createSocket("udp4");
        let left = datagrams.length;
        for (const d of datagrams) socket.send(Buffer.from(d, "base64"), 67, process.argv[2], () => {
          if (--left === 0) socket.close();
        });`;
      const sent = await runToEnd(
        link.spawnInClient(process.execPath, ["-e", sender, datagramsFile, link.serverIp]),
        30_000,
      );
      assert.equal(sent.code, 0, sent.output);
      const replies = await forge(link, files, [
        { send: [{ mac: "52:54:00:7e:57:b2", type: "Discover" }], waitMs: 2_000 },
      ]);
      assert.deepEqual(
        replies.map((r) => `${r.type} ${r.mac}`),
        ["OFFER 52:54:00:7e:57:b2"],
        "the forger hears its own OFFER only (the padded DISCOVERs came from another socket)",
      );
      const counters = await stopWithCounters(server);
      assert.equal(counters.malformed, 503, `empty, 9,001, 60,000 and the junk: ${JSON.stringify(counters)}`);
      assert.equal(counters.replies, 2, `the 9,000-byte DISCOVER and the forger's: ${JSON.stringify(counters)}`);
    } finally {
      link.destroy();
      files.cleanup();
    }
  });
});
