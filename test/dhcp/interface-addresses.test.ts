import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { test } from "node:test";
import { repo } from "../support/daemon.js";
import { requireBinaries, sh } from "../support/netns.js";

// The lab's bridge has no running port until the first VM starts; libuv's os.networkInterfaces()
// leaves such an interface out, and DHCP refused to start ("br-lab has no IPv4 address").
test("an interface without carrier still shows its address to the DHCP interface check", (t) => {
  if (!requireBinaries(t, "ip")) return;
  const ns = `cia-${randomBytes(3).toString("hex")}`;
  sh("ip", ["netns", "add", ns]);
  try {
    sh("ip", ["-n", ns, "link", "add", "nocarrier0", "type", "veth", "peer", "name", "peer0"]);
    sh("ip", ["-n", ns, "addr", "add", "10.99.7.1/24", "dev", "nocarrier0"]);
    sh("ip", ["-n", ns, "link", "set", "nocarrier0", "up"]); // its peer stays down: NO-CARRIER
    const script = [
      'import { networkInterfaces } from "node:os";',
      `import { readInterfaceAddresses } from ${JSON.stringify(join(repo, "src/dhcp/interface-addresses.ts"))};`,
      "console.log(JSON.stringify({ libuv: Object.keys(networkInterfaces()), ours: readInterfaceAddresses() }));",
    ].join("\n");
    const out = sh("ip", [
      "netns",
      "exec",
      ns,
      process.execPath,
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      script,
    ]);
    const seen = JSON.parse(out.trim().split("\n").pop() ?? "{}") as {
      libuv: string[];
      ours: Record<string, { address: string; netmask: string }[]>;
    };
    assert.ok(!seen.libuv.includes("nocarrier0"), "the premise: libuv leaves out an interface without carrier");
    assert.deepEqual(seen.ours.nocarrier0, [{ family: "IPv4", address: "10.99.7.1", netmask: "255.255.255.0" }]);
  } finally {
    sh("ip", ["netns", "del", ns]);
  }
});
