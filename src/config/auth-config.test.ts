import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "./load.js";

const base = "dhcp: { mode: off }\n";

test("auth.oidc: a Keycloak-shaped block parses with the clock skew's default", () => {
  const config = parseConfig(`${base}auth:
  oidc:
    issuer: https://sso.example.com/realms/ops
    audience: centra-pxe
    roleClaim: realm_access.roles
    roleMap: { pxe-admins: admin, oncall: operator }
`);
  assert.deepEqual(config.auth.oidc, {
    issuer: "https://sso.example.com/realms/ops",
    audience: "centra-pxe",
    roleClaim: "realm_access.roles",
    roleMap: { "pxe-admins": "admin", oncall: "operator" },
    clockTolerance: 30_000,
  });
  assert.equal(parseConfig(base).auth.oidc, undefined, "no identity provider by default");
});

test("auth.oidc: keys over plain http (but loopback), a role that is not one, a missing claim: each said with its place", () => {
  assert.throws(
    () =>
      parseConfig(`${base}auth:
  oidc:
    issuer: http://sso.example.com/realms/ops
    audience: centra-pxe
    jwksUrl: http://127.0.0.1:8080/certs
    roleMap: { pxe-admins: root }
`),
    (error: Error & { problems?: { path: string; message: string }[] }) => {
      const problems = (error.problems ?? []).map((p) => `${p.path}: ${p.message}`);
      assert.ok(
        problems.some((p) => /^auth\.oidc\.issuer: must be https:\/\//.test(p)),
        problems.join("\n"),
      );
      assert.ok(
        problems.some((p) => /^auth\.oidc\.roleMap\.pxe-admins: must be one of viewer, operator, admin/.test(p)),
        problems.join("\n"),
      );
      assert.ok(
        problems.some((p) => /^auth\.oidc\.roleClaim/.test(p)),
        problems.join("\n"),
      );
      assert.ok(!problems.some((p) => p.startsWith("auth.oidc.jwksUrl")), "loopback http is allowed");
      return true;
    },
  );
});
