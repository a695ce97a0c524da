import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../config/load.js";
import { bootChainOf } from "./boot-chain.js";

const config = parseConfig(`
profiles:
  secure: { image: nixos, secureBoot: true }
  plain: { image: nixos }
nodes:
  "52:54:00:00:00:01": { profile: secure }
  "52:54:00:00:00:02": { profile: secure, secureBoot: false, macs: ["52:54:00:00:00:03"] }
  "52:54:00:00:00:04": { profile: plain, secureBoot: true }
`);

test("a node's own secureBoot wins over its profile's, for each of its NICs", () => {
  assert.equal(bootChainOf(config, "52:54:00:00:00:01").secureBoot, true);
  assert.equal(bootChainOf(config, "52:54:00:00:00:02").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:03").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:04").secureBoot, true);
});

test("a machine the config does not list takes its inventory profile's chain; unknown means iPXE", () => {
  assert.equal(bootChainOf(config, "52:54:00:00:00:09", "secure").secureBoot, true);
  assert.equal(bootChainOf(config, "52:54:00:00:00:09", "plain").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:09", "no-such-profile").secureBoot, false);
  assert.equal(bootChainOf(config, "52:54:00:00:00:09").secureBoot, false);
});
