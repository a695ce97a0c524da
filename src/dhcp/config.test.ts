import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "../config/load.js";
import { ConfigError } from "../errors.js";

/** The `dhcp.relays` and `dhcp.budgets` keys of the config (issue 10), as `centra-pxe validate` reports them. */

function problemsOf(text: string): string[] {
  try {
    parseConfig(text, "relays.yaml");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message.split("\n");
  }
  return [];
}

describe("dhcp.relays and dhcp.budgets", () => {
  it("default to no relayed service and the documented budgets", () => {
    const config = parseConfig("");
    assert.deepEqual(config.dhcp.relays, []);
    assert.deepEqual(config.dhcp.budgets.newClients, { rate: 100, burst: 500, perMacBurst: 10, perMacInterval: 1_000 });
    assert.deepEqual(config.dhcp.budgets.sightings, { rate: 20, burst: 100, perMacBurst: 6, perMacInterval: 10_000 });
  });

  it("accept a relay whose giaddr lies in a relayed subnet", () => {
    const config = parseConfig(
      [
        "dhcp:",
        "  relays: [10.0.200.1]",
        "  subnets:",
        "    - { subnet: 10.0.200.0, netmask: 255.255.255.0, range: { start: 10.0.200.100, end: 10.0.200.200 } }",
      ].join("\n"),
    );
    assert.deepEqual(config.dhcp.relays, ["10.0.200.1"]);
  });

  it("name the line and column of a bad, duplicate or subnet-less relay, and of a bad budget", () => {
    const problems = problemsOf(
      [
        "dhcp:",
        "  relays:",
        "    - not-an-address",
        "    - 172.16.0.1",
        "    - 10.0.100.1",
        "    - 10.0.100.1",
        "  budgets:",
        "    newClients: { rate: 0, burst: 1.5 }",
      ].join("\n"),
    );
    const text = problems.join("\n");
    assert.match(text, /relays\.yaml:3:\d+ dhcp\.relays\.0: .*not an IPv4 address/);
    assert.match(text, /relays\.yaml:4:\d+ dhcp\.relays\.1: 172\.16\.0\.1 is in no DHCP subnet/);
    assert.match(text, /relays\.yaml:6:\d+ dhcp\.relays\.3: 10\.0\.100\.1 is listed twice/);
    assert.match(text, /dhcp\.budgets\.newClients\.rate/);
    assert.match(text, /dhcp\.budgets\.newClients\.burst/);
  });
});
