import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLink, requireBinaries, sh } from "../support/netns.js";
import { CLIENT_SCRIPT, runToEnd, serverFiles, startServerProcess } from "./harness.js";

/**
 * Only the configured interface is ever answered (issue 3): the server's namespace has two links,
 * the server is configured on one, and a client on the other gets nothing — not even a packet
 * into the server, since the socket is bound to the device (SO_BINDTODEVICE).
 */
describe("interface restriction", { timeout: 180_000 }, () => {
  it("answers on the configured link and never on the other one", async (t) => {
    if (!requireBinaries(t, "udhcpc", "ip")) return;
    const served = createLink({ clientIp: null });
    const other = createLink({ clientIp: null });
    const files = serverFiles(served);
    try {
      // Move the second link's server end into the server's namespace: one host, two networks.
      sh("ip", ["-n", other.serverNs!, "link", "set", other.serverIf, "netns", served.serverNs!]);
      sh("ip", ["-n", served.serverNs!, "addr", "add", `${other.serverIp}/24`, "dev", other.serverIf]);
      sh("ip", ["-n", served.serverNs!, "link", "set", other.serverIf, "up"]);

      const udhcpc = (link: typeof served, result: string) =>
        runToEnd(
          link.spawnInClient(
            "udhcpc",
            ["-f", "-q", "-n", "-i", link.clientIf, "-s", CLIENT_SCRIPT, "-t", "4", "-T", "1"],
            { env: { ...process.env, CLIENT_RESULT: result } },
          ),
          60_000,
        );

      let server = await startServerProcess(served, files);
      const rogue = await udhcpc(other, join(files.dir, "other.txt"));
      assert.notEqual(rogue.code, 0, `a client on the other link got an answer:\n${rogue.output}`);
      await server.stop();
      const counters = JSON.parse(/counters (\{.*\})/.exec(server.output())?.[1] ?? "{}") as { received?: number };
      assert.equal(counters.received, 0, "the other link's DISCOVERs must not even reach the server");

      server = await startServerProcess(served, files);
      const good = await udhcpc(served, join(files.dir, "served.txt"));
      assert.equal(good.code, 0, good.output);
      await server.stop();
    } finally {
      other.destroy();
      served.destroy();
      files.cleanup();
    }
  });
});
