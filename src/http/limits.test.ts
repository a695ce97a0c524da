import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../config/load.js";
import { ConfigError } from "../errors.js";
import { fastifyLimitOptions } from "./limits.js";

test("HTTP and TFTP listen on serverAddress unless told otherwise; 0.0.0.0 stays possible", () => {
  const byDefault = parseConfig("serverAddress: 10.0.100.10\n");
  assert.equal(byDefault.http.bindAddress, "10.0.100.10");
  assert.equal(byDefault.tftp.bindAddress, "10.0.100.10");
  const everywhere = parseConfig(
    "serverAddress: 10.0.100.10\nhttp: { bindAddress: 0.0.0.0 }\ntftp: { bindAddress: 0.0.0.0 }\n",
  );
  assert.equal(everywhere.http.bindAddress, "0.0.0.0");
  assert.equal(everywhere.tftp.bindAddress, "0.0.0.0");
});

test("the http limits have defaults a boot client never meets", () => {
  const { http } = parseConfig("{}\n");
  assert.deepEqual(
    { ...http, bindAddress: undefined },
    {
      port: 80,
      bindAddress: undefined,
      headerTimeout: 10_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 5_000,
      sendTimeout: 60_000,
      maxConnections: 1024,
      maxConnectionsPerAddress: 32,
      maxRequestsPerSocket: 1000,
      bodyLimit: 1024 * 1024,
    },
  );
});

test("bad limits are refused with their place in the file", () => {
  const problems = (text: string) => {
    try {
      parseConfig(text, "c.yaml");
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    assert.fail("accepted");
  };
  assert.match(
    problems("http:\n  headerTimeout: 20s\n  requestTimeout: 10s\n"),
    /c\.yaml:3:\d+ http\.requestTimeout: must be at least headerTimeout/,
  );
  assert.match(
    problems("http:\n  keepAliveTimeout: 0s\n"),
    /c\.yaml:2:\d+ http\.keepAliveTimeout: must be longer than 0/,
  );
  assert.match(problems("http:\n  maxConnections: 0\n"), /http\.maxConnections/);
  assert.match(
    problems("http:\n  headerTimout: 5s\n"),
    /http\.headerTimout: unknown key; did you mean "headerTimeout"/,
  );
});

test("limits map onto Node's and Fastify's server options", () => {
  const options = fastifyLimitOptions(
    parseConfig("http: { headerTimeout: 4s, requestTimeout: 9s, sendTimeout: 20s }\n").http,
  );
  assert.equal(options.connectionTimeout, 20_000);
  assert.equal(options.requestTimeout, 9_000);
  assert.equal(options.http.headersTimeout, 4_000);
  // Node only looks for expired heads this often; it must be well under the timeout itself.
  assert.ok(options.http.connectionsCheckingInterval! <= 2_000);
});
