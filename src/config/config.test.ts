import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { ConfigError } from "../errors.js";
import { parseConfig } from "./load.js";
import { normalizeMac, parseDuration } from "./primitives.js";

const golden = (name: string) => new URL(`../../testdata/config/${name}`, import.meta.url);

function problemsOf(text: string, file = "test.yaml"): string[] {
  try {
    parseConfig(text, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message.split("\n");
  }
  return [];
}

test("the PRODUCT.md example config is valid, with MACs normalised and durations in ms", () => {
  const config = parseConfig(readFileSync(golden("valid.yaml"), "utf8"));
  assert.deepEqual(Object.keys(config.nodes), ["52:54:00:12:34:56", "52:54:00:12:34:5d"]);
  assert.equal(config.dhcp.leaseTime, 3_600_000);
  assert.equal(config.boot.menuTimeout, 10_000);
});

test("an empty file is the embedded defaults: the seed's network and three profiles", () => {
  const config = parseConfig("");
  assert.equal(config.serverAddress, "10.0.100.10");
  assert.deepEqual(config.dhcp.range, { start: "10.0.100.100", end: "10.0.100.200" });
  assert.deepEqual(Object.keys(config.profiles), ["control-plane", "worker", "all-in-one"]);
});

test("a config with many mistakes reports every one, located (golden file)", () => {
  const actual = `${problemsOf(readFileSync(golden("many-mistakes.yaml"), "utf8"), "many-mistakes.yaml").join("\n")}\n`;
  const expectedFile = golden("many-mistakes.errors");
  if (process.env.UPDATE_GOLDEN) writeFileSync(expectedFile, actual);
  assert.equal(actual, readFileSync(expectedFile, "utf8"));
  assert.ok(actual.trim().split("\n").length >= 8);
});

const cases: [string, string, RegExp][] = [
  [
    "unknown key with a hint",
    "dhcp:\n  rnage: {}\n",
    /^test\.yaml:2:3 dhcp\.rnage: unknown key; did you mean "range"\?$/,
  ],
  [
    "unknown key in a list and in a map, with hints",
    "dhcp:\n  subnets:\n    - { subnet: 10.1.0.0, netmask: 255.255.255.0, range: { start: 10.1.0.10, end: 10.1.0.20 }, rooter: 10.1.0.1 }\nprofiles:\n  x: { imag: nixos }\n",
    /^test\.yaml:3:\d+ dhcp\.subnets\.0\.rooter: unknown key; did you mean "router"\?$/,
  ],
  ["bad IPv4", "serverAddress: 10.0.0\n", /^test\.yaml:1:16 serverAddress: is not an IPv4 address/],
  ["range reversed", "dhcp:\n  range: { start: 10.0.100.200, end: 10.0.100.100 }\n", /dhcp\.range: range is reversed/],
  [
    "range outside the subnet",
    "dhcp:\n  range: { start: 10.0.99.1, end: 10.0.100.100 }\n",
    /^test\.yaml:2:19 dhcp\.range\.start: 10\.0\.99\.1 is outside subnet/,
  ],
  [
    "fixed address outside the subnet",
    'nodes:\n  "52:54:00:00:00:01": { profile: worker, ipAddress: 10.9.9.9 }\n',
    /ipAddress: 10\.9\.9\.9 is outside every DHCP subnet/,
  ],
  [
    "fixed address inside the pool",
    'nodes:\n  "52:54:00:00:00:01": { profile: worker, ipAddress: 10.0.100.150 }\n',
    /inside the dynamic pool/,
  ],
  [
    "fixed address used twice",
    'nodes:\n  "52:54:00:00:00:01": { profile: worker, ipAddress: 10.0.100.5 }\n  "52:54:00:00:00:02": { profile: worker, ipAddress: 10.0.100.5 }\n',
    /^test\.yaml:3:.* already the fixed address of 52:54:00:00:00:01$/,
  ],
  [
    "same MAC in another case and separator",
    'nodes:\n  "52:54:00:AB:00:01": { profile: worker }\n  "52-54-00-ab-00-01": { profile: worker }\n',
    /^test\.yaml:3:3 nodes\.52-54-00-ab-00-01: MAC 52:54:00:ab:00:01 is listed twice/,
  ],
  ["bad MAC", 'nodes:\n  "52:54:00:00:01": { profile: worker }\n', /is not a MAC address/],
  [
    "unknown profile",
    'nodes:\n  "52:54:00:00:00:01": { profile: storage }\n',
    /profile: unknown profile "storage" \(defined: control-plane, worker, all-in-one\)/,
  ],
  ["bad duration", "boot:\n  menuTimeout: soon\n", /^test\.yaml:2:16 boot\.menuTimeout: is not a duration/],
  ["wrong type", "http:\n  port: eighty\n", /http\.port: must be number, not string/],
  ["bad mode", "dhcp:\n  mode: relay\n", /dhcp\.mode: must be one of "server", "proxy", "off"/],
  [
    "storage not implemented",
    "storage: postgres://pxe@db/pxe\n",
    /^test\.yaml:1:10 storage: only "sqlite" .* PostgreSQL storage is not available yet$/,
  ],
  ["YAML syntax", "dhcp: [\n", /^test\.yaml:\d+:\d+ \(root\): YAML syntax/],
];
for (const [name, text, expected] of cases) {
  test(`config error: ${name}`, () => {
    const problems = problemsOf(text);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `expected ${expected} in:\n${problems.join("\n")}`,
    );
  });
}

test("MACs in every notation normalise to one form; junk does not", () => {
  for (const text of ["52:54:00:12:34:5D", "52-54-00-12-34-5d", "52540012345d", "5254.0012.345d"])
    assert.equal(normalizeMac(text), "52:54:00:12:34:5d");
  for (const text of ["52:54:00:12:34", "52:54-00:12:34:5d", "zz:54:00:12:34:5d"])
    assert.equal(normalizeMac(text), undefined);
});

test("durations", () => {
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration(30), 30_000);
  assert.equal(parseDuration("1 hour"), undefined);
});
