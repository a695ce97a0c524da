import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLink, requireBinaries } from "../support/netns.js";
import { CLIENT_SCRIPT, leasesIn, runToEnd, serverFiles, sleep, startServerProcess, waitFor } from "./harness.js";

/**
 * Real DHCP clients against the server in network namespaces: ISC dhclient and busybox udhcpc get
 * a node's fixed address and hostname, a pool address otherwise, renew, release, and find their
 * lease again after a server restart.
 */

const KNOWN_MAC = "52:54:00:7e:57:01";

describe("DHCP with real clients", { timeout: 240_000 }, () => {
  it("dhclient: fixed address and hostname for a known MAC, pool address otherwise, release", async (t) => {
    if (!requireBinaries(t, "dhclient", "ip")) return;
    const link = createLink({ clientIp: null });
    const files = serverFiles(link, (base) => ({
      nodes: { [KNOWN_MAC]: { profile: "worker", hostname: "worker-07", ipAddress: `${base}.5` } },
    }));
    try {
      const server = await startServerProcess(link, files);
      const base = link.serverIp.replace(/\.1$/, "");
      const dhclient = (args: string[], result: string) =>
        runToEnd(
          link.spawnInClient("dhclient", [
            "-1",
            "-v",
            "-sf",
            CLIENT_SCRIPT,
            "-e",
            `CLIENT_RESULT=${result}`,
            "-pf",
            join(files.dir, "dhclient.pid"),
            "-lf",
            join(files.dir, "dhclient.leases"),
            ...args,
            link.clientIf,
          ]),
          60_000,
        );

      link.inClient("ip", ["link", "set", link.clientIf, "address", KNOWN_MAC]);
      const known = join(files.dir, "known.txt");
      const first = await dhclient([], known);
      assert.equal(first.code, 0, first.output);
      assert.match(
        readFileSync(known, "utf8"),
        new RegExp(`BOUND ip=${base.replace(/\./g, "\\.")}\\.5 hostname=worker-07 lease=3600`),
      );
      assert.match(link.inClient("ip", ["-4", "addr", "show", link.clientIf]), new RegExp(`${base}\\.5/24`));

      // Release (RFC 2131 §4.4.6): the record says so, and the address is off the interface.
      const release = await dhclient(["-r"], known);
      assert.equal(release.code, 0, release.output);
      await waitFor("the release to be saved", () =>
        leasesIn(files.dbFile).find((l) => l.address === `${base}.5` && l.state === "released"),
      );

      // An unknown MAC gets a pool address.
      link.inClient("ip", ["link", "set", link.clientIf, "address", "52:54:00:7e:57:99"]);
      const unknown = join(files.dir, "unknown.txt");
      const second = await dhclient([], unknown);
      assert.equal(second.code, 0, second.output);
      const bound = /BOUND ip=(\S+)/.exec(readFileSync(unknown, "utf8"))?.[1];
      const last = Number(bound?.split(".")[3]);
      assert.ok(bound?.startsWith(`${base}.`) && last >= 10 && last <= 250, `pool address, got ${bound}`);
      const lease = leasesIn(files.dbFile).find((l) => l.address === bound);
      assert.equal(lease?.mac, "52:54:00:7e:57:99");
      assert.equal(lease?.state, "bound");
      await server.stop();
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("udhcpc: pool address, renew (unicast), release, and the same address after a server restart", async (t) => {
    if (!requireBinaries(t, "udhcpc", "ip")) return;
    const link = createLink({ clientIp: null });
    const files = serverFiles(link);
    const result = join(files.dir, "udhcpc.txt");
    try {
      let server = await startServerProcess(link, files);
      const mac = "52:54:00:7e:57:42";
      link.inClient("ip", ["link", "set", link.clientIf, "address", mac]);
      // -f foreground, -t/-T retries, -A retry after failure; SIGUSR1 renews, SIGUSR2 releases.
      const udhcpc = link.spawnInClient(
        "udhcpc",
        ["-f", "-i", link.clientIf, "-s", CLIENT_SCRIPT, "-t", "10", "-T", "2", "-A", "2"],
        { env: { ...process.env, CLIENT_RESULT: result } },
      );
      let log = "";
      udhcpc.stdout!.on("data", (d: Buffer) => (log += d.toString()));
      udhcpc.stderr!.on("data", (d: Buffer) => (log += d.toString()));
      const read = () => (existsSync(result) ? readFileSync(result, "utf8") : "");
      const address = await waitFor("udhcpc to bind", () => /bound ip=(\S+)/.exec(read())?.[1], 60_000);
      assert.ok(leasesIn(files.dbFile).some((l) => l.address === address && l.mac === mac && l.state === "bound"));

      const before = leasesIn(files.dbFile).find((l) => l.address === address)!.expiresAt;
      await sleep(1100);
      udhcpc.kill("SIGUSR1");
      await waitFor(`a renew (udhcpc said: ${log})`, () => (/renew ip=/.test(read()) ? true : undefined), 60_000);
      await waitFor("the renewed lease to be saved", () =>
        leasesIn(files.dbFile).find((l) => l.address === address)!.expiresAt > before ? true : undefined,
      );

      udhcpc.kill("SIGUSR2");
      await waitFor("the release to be saved", () =>
        leasesIn(files.dbFile).find((l) => l.address === address && l.state === "released"),
      );
      udhcpc.kill("SIGTERM");

      // A restart loads the leases: the client is given its address back.
      await server.stop();
      server = await startServerProcess(link, files);
      const again = join(files.dir, "again.txt");
      const once = await runToEnd(
        link.spawnInClient(
          "udhcpc",
          ["-f", "-q", "-n", "-i", link.clientIf, "-s", CLIENT_SCRIPT, "-t", "10", "-T", "2"],
          { env: { ...process.env, CLIENT_RESULT: again } },
        ),
        60_000,
      );
      assert.equal(once.code, 0, once.output);
      assert.match(readFileSync(again, "utf8"), new RegExp(`bound ip=${address.replace(/\./g, "\\.")} `));
      await server.stop();
    } finally {
      link.destroy();
      files.cleanup();
    }
  });

  it("SIGHUP reload: a node added to the config gets its fixed address without a restart", async (t) => {
    if (!requireBinaries(t, "udhcpc", "ip")) return;
    const link = createLink({ clientIp: null });
    const files = serverFiles(link);
    try {
      const server = await startServerProcess(link, files);
      const mac = "52:54:00:7e:57:55";
      link.inClient("ip", ["link", "set", link.clientIf, "address", mac]);
      const base = link.serverIp.replace(/\.1$/, "");
      const config = JSON.parse(readFileSync(files.configFile, "utf8")) as Record<string, unknown>;
      config.nodes = { [mac]: { profile: "worker", hostname: "late-node", ipAddress: `${base}.7` } };
      writeFileSync(files.configFile, JSON.stringify(config));
      server.child.kill("SIGHUP");
      await waitFor("the reload", () => (server.output().includes("reloaded") ? true : undefined));
      const result = join(files.dir, "reload.txt");
      const run = await runToEnd(
        link.spawnInClient(
          "udhcpc",
          ["-f", "-q", "-n", "-i", link.clientIf, "-s", CLIENT_SCRIPT, "-t", "10", "-T", "2"],
          { env: { ...process.env, CLIENT_RESULT: result } },
        ),
        60_000,
      );
      assert.equal(run.code, 0, run.output);
      assert.match(
        readFileSync(result, "utf8"),
        new RegExp(`bound ip=${base.replace(/\./g, "\\.")}\\.7 hostname=late-node`),
      );
      await server.stop();
    } finally {
      link.destroy();
      files.cleanup();
    }
  });
});
