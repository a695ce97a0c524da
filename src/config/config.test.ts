import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { ConfigError } from "../errors.js";
import { EXAMPLE_CONFIG } from "./example.js";
import { loadConfigFile, parseConfig, parseConfigWithWarnings } from "./load.js";
import { closest, FETCH_BAD_PORTS, formatDuration, normalizeMac, parseDuration } from "./primitives.js";
import { fileForm } from "./schema.js";

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
  // The field's own message is kept (issue 18): zod's "Expected number, received string" never shows.
  ["wrong type", "http:\n  port: eighty\n", /http\.port: must be a port number$/],
  ["bad mode", "dhcp:\n  mode: relay\n", /dhcp\.mode: must be one of "server", "proxy", "off"/],
  ["storage neither sqlite nor postgres", "storage: mysql://pxe@db/pxe\n", /^test\.yaml:1:10 storage: /],
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

/**
 * Issue 18: every unsafe or confusing config an operator meets in the first hour, and exactly what
 * `validate` says about it (errors, or warnings on a valid config). Golden: bad-configs.errors,
 * regenerated with UPDATE_GOLDEN=1. Each case must produce at least one line.
 */
const BAD_CONFIGS: [name: string, text: string][] = [
  ["rogue DHCP: a real interface and address, no dhcp block", "interface: eno1\nserverAddress: 192.168.1.10\n"],
  [
    "serverAddress outside the declared dhcp.subnet",
    "serverAddress: 192.168.1.10\ndhcp:\n  subnet: 10.0.100.0\n  netmask: 255.255.255.0\n",
  ],
  ["serverAddress inside the pool", "serverAddress: 10.0.100.150\n"],
  ["router inside the pool", "dhcp:\n  router: 10.0.100.120\n"],
  ["pool includes the network address", "dhcp:\n  range: { start: 10.0.100.0, end: 10.0.100.200 }\n"],
  ["pool includes the broadcast address", "dhcp:\n  range: { start: 10.0.100.100, end: 10.0.100.255 }\n"],
  ["broadcast is not the subnet's broadcast", "dhcp:\n  broadcast: 10.0.100.7\n"],
  ["tftp.port 0 (warning)", "tftp: { port: 0 }\n"],
  ["http.port 0 (warning)", "http: { port: 0 }\n"],
  ["http.port that Node's fetch refuses (warning)", "http: { port: 10080 }\n"],
  [
    "a repeated key is named with both lines, and the rest is still checked",
    "dhcp:\n  router: 10.0.100.1\n  leaseTime: 1h\n  router: 10.0.100.2\nlogLevel: loud\n",
  ],
  ["two YAML documents", "logLevel: info\n---\nlogLevel: debug\n"],
  ["a tab as indentation", "dhcp:\n\tmode: server\n"],
  ["an empty string", 'interface: ""\n'],
  ["a number where an address goes keeps the field's message", "serverAddress: 10\n"],
  ["an unknown key far from every known one gets no hint", "foo: 1\n"],
  [
    "an unknown key one slip from a known one gets a hint",
    "dhcp:\n  rnage: { start: 10.0.100.100, end: 10.0.100.200 }\n",
  ],
  ["a word where a port goes", "http:\n  port: eighty\n"],
];

test("bad configs: every case of issue 18 and its exact message (golden file)", () => {
  let actual = "";
  for (const [name, text] of BAD_CONFIGS) {
    let lines: string[];
    try {
      lines = parseConfigWithWarnings(text, "bad.yaml").warnings.map(
        (w) => `${w.file}:${w.line}:${w.col} ${w.path}: ${w.message}`,
      );
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      lines = error.message.split("\n");
    }
    assert.ok(lines.length > 0, `${name}: validate says nothing about it`);
    for (const line of lines) {
      assert.doesNotMatch(
        line,
        /parseAllDocuments|must contain at least|Expected \w+, received|Map keys must be unique/,
      );
    }
    actual += `## ${name}\n${lines.join("\n")}\n`;
  }
  const expectedFile = golden("bad-configs.errors");
  if (process.env.UPDATE_GOLDEN) writeFileSync(expectedFile, actual);
  assert.equal(actual, readFileSync(expectedFile, "utf8"));
});

test("a missing file is named without a made-up position", () => {
  assert.throws(() => loadConfigFile("/nonexistent/centra-pxe.yaml"), {
    message: "/nonexistent/centra-pxe.yaml: cannot read: no such file",
  });
});

test("did you mean: one slip away yes, two letters of a short word no", () => {
  assert.equal(closest("rnage", ["range", "router"]), "range");
  assert.equal(closest("serverAdress", ["serverAddress", "stateDir"]), "serverAddress");
  assert.equal(closest("foo", ["boot", "tftp", "http"]), undefined);
});

test("the commented example validates with no warnings", () => {
  const { config, warnings } = parseConfigWithWarnings(EXAMPLE_CONFIG, "example.yaml");
  assert.deepEqual(warnings, []);
  assert.equal(config.dhcp.mode, "server");
});

test("config show: the file form of the effective config parses back to the same config", () => {
  for (const text of [
    readFileSync(golden("valid.yaml"), "utf8"),
    EXAMPLE_CONFIG,
    "",
    "provisioning: { timeout: 1h30m }\n",
  ]) {
    const config = parseConfig(text);
    assert.deepEqual(parseConfig(JSON.stringify(fileForm(config))), config);
  }
  assert.equal(fileForm(parseConfig("")).boot?.menuTimeout, "10s");
  assert.equal(formatDuration(5_400_250), "1h30m250ms");
});

test("FETCH_BAD_PORTS is the list Node's fetch refuses before connecting", async () => {
  for (const port of FETCH_BAD_PORTS) {
    const failure = await fetch(`http://127.0.0.1:${port}/`).then(
      () => undefined,
      (error: Error) => error,
    );
    assert.equal((failure?.cause as Error | undefined)?.message ?? failure?.cause, "bad port", `port ${port}`);
  }
});
