import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from "jose";
import { isRole, type Role, roleAllows } from "../config/roles.js";
import type { OidcConfig } from "../config/schema.js";
import { parseScope } from "./access.js";
import type { Principal } from "./principal.js";

/**
 * Bearer JWTs from the company's OpenID Connect provider, verified with `jose` against the
 * issuer's published keys (RFC 7517 JWKS). Only asymmetric algorithms: with HS256 the "key" would
 * be a secret we share with the issuer, and accepting it beside RS256 is the classic confusion
 * where the public key is used as the HMAC secret (RFC 8725 §2.1, §3.1). `none` is never accepted.
 */
export const ALLOWED_ALGORITHMS = ["RS256", "ES256", "EdDSA"];

export type OidcResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401 | 403 | 503; reason: string; message: string };

export interface OidcVerifier {
  verify(jwt: string): Promise<OidcResult>;
}

export interface OidcVerifierOptions {
  /**
   * The least time between two fetches of the key set. A token with an unknown `kid` makes jose
   * fetch the set again (a key rotation), at most this often: a stranger spraying made-up kids
   * costs the provider one request per interval.
   */
  cooldownMs?: number;
  /** How long a fetch of the discovery document or the keys may take. */
  timeoutMs?: number;
}

/** Keys are refetched after this long even without an unknown kid: a removed key stops working. */
const KEY_SET_MAX_AGE_MS = 10 * 60_000;

export function createOidcVerifier(config: OidcConfig, options: OidcVerifierOptions = {}): OidcVerifier {
  const cooldownMs = options.cooldownMs ?? 5_000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  let keySet: ReturnType<typeof createRemoteJWKSet> | undefined;
  let pending: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  let lastDiscoveryFailure = Number.NEGATIVE_INFINITY;

  /** The key set, its URL found through discovery the first time (and again after a failure, not more than once per cooldown). */
  const keys = async (): Promise<ReturnType<typeof createRemoteJWKSet>> => {
    if (keySet) return keySet;
    if (Date.now() - lastDiscoveryFailure < cooldownMs)
      throw new KeysUnavailable("the last discovery failed moments ago");
    pending ??= (async () => {
      const url = config.jwksUrl ?? (await discoverKeySetUrl(config.issuer, timeoutMs));
      return createRemoteJWKSet(new URL(url), {
        cooldownDuration: cooldownMs,
        timeoutDuration: timeoutMs,
        cacheMaxAge: KEY_SET_MAX_AGE_MS,
      });
    })();
    try {
      keySet = await pending;
      return keySet;
    } catch (error) {
      lastDiscoveryFailure = Date.now();
      throw error;
    } finally {
      pending = undefined;
    }
  };

  return {
    async verify(jwt) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(jwt, await keys(), {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: ALLOWED_ALGORITHMS,
          clockTolerance: Math.round(config.clockTolerance / 1000),
          // A token without an expiry would be good forever once leaked; one without a subject names no one.
          requiredClaims: ["exp", "sub"],
        }));
      } catch (error) {
        return refused(error);
      }
      return principalOf(payload, config);
    },
  };
}

class KeysUnavailable extends Error {}

/** OpenID Connect Discovery 1.0 §4: the provider's metadata names its `jwks_uri`; its `issuer` must be ours exactly (§4.3). */
async function discoverKeySetUrl(issuer: string, timeoutMs: number): Promise<string> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  let metadata: unknown;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
    if (!response.ok) throw new KeysUnavailable(`${url} answered HTTP ${response.status}`);
    metadata = await response.json();
  } catch (error) {
    throw error instanceof KeysUnavailable ? error : new KeysUnavailable(`${url}: ${(error as Error).message}`);
  }
  const { issuer: named, jwks_uri: keySetUrl } = (metadata ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
  if (named !== issuer) throw new KeysUnavailable(`${url} names issuer ${JSON.stringify(named)}, not ${issuer}`);
  if (typeof keySetUrl !== "string") throw new KeysUnavailable(`${url} has no jwks_uri`);
  const parsed = new URL(keySetUrl);
  if (parsed.protocol !== "https:" && !["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname))
    throw new KeysUnavailable(`${url} names a key set over plain http (${keySetUrl})`);
  return keySetUrl;
}

/**
 * Why a JWT was not accepted, in words that help its holder and give a stranger nothing: the
 * reasons are jose's checks, none of which depend on anything but the token itself and the public keys.
 */
function refused(error: unknown): OidcResult {
  const no = (reason: string, message: string): OidcResult => ({ ok: false, status: 401, reason, message });
  // Anything but jose's own verdict (a refused connection to the key set, say) is the provider's
  // trouble, not the token's: 503, and the token is not accepted either way.
  if (error instanceof KeysUnavailable || error instanceof errors.JWKSTimeout || !(error instanceof errors.JOSEError))
    return {
      ok: false,
      status: 503,
      reason: "keys-unavailable",
      message: "the identity provider's keys cannot be fetched now; try again shortly",
    };
  if (error instanceof errors.JWTExpired) return no("expired", "the token has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "nbf") return no("not-yet-valid", "the token is not valid yet (nbf)");
    if (error.claim === "iss") return no("issuer", "the token is from another issuer");
    if (error.claim === "aud") return no("audience", "the token is for another audience");
    return no("claims", `the token's ${error.claim} claim is missing or not accepted`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported)
    return no("algorithm", `the token's algorithm is not accepted (only ${ALLOWED_ALGORITHMS.join(", ")})`);
  if (error instanceof errors.JWKSNoMatchingKey) return no("unknown-key", "the token is signed with an unknown key");
  if (error instanceof errors.JWKSInvalid || error instanceof errors.JWKSMultipleMatchingKeys)
    return {
      ok: false,
      status: 503,
      reason: "keys-unavailable",
      message: "the identity provider's key set cannot be used; see the server log",
    };
  return no("invalid", "the token is not valid");
}

/** A claim by name, or by a dotted path into nested objects (Keycloak's `realm_access.roles`). */
function claim(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function strings(value: unknown): string[] {
  if (typeof value === "string") return value.split(/[\s,]+/).filter((s) => s !== "");
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/** The verified token's role (the highest its claim maps to) and scope. */
function principalOf(payload: JWTPayload, config: OidcConfig): OidcResult {
  const values = strings(claim(payload, config.roleClaim));
  let role: Role | undefined;
  for (const value of values) {
    const mapped = config.roleMap ? config.roleMap[value] : isRole(value) ? value : undefined;
    if (mapped !== undefined && (role === undefined || roleAllows(mapped, role))) role = mapped;
  }
  const name = [payload.preferred_username, payload.name, payload.email].find((v) => typeof v === "string") as
    | string
    | undefined;
  const actor = { kind: "oidc" as const, id: payload.sub!, ...(name ? { name } : {}), issuer: payload.iss! };
  if (role === undefined)
    return {
      ok: false,
      status: 403,
      reason: "no-role",
      message: `the token's ${config.roleClaim} claim maps to no role (viewer, operator or admin); ask for access`,
    };
  if (config.scopeClaim === undefined) return { ok: true, principal: { role, actor } };
  const raw = claim(payload, config.scopeClaim);
  if (raw === undefined) return { ok: true, principal: { role, actor } };
  const pairs =
    typeof raw === "object" && raw !== null && !Array.isArray(raw)
      ? Object.entries(raw).map(([key, value]) => `${key}=${String(value)}`)
      : strings(raw);
  const parsed = parseScope(pairs);
  // A scope claim we cannot read must not widen the token to the whole fleet.
  if ("problems" in parsed)
    return {
      ok: false,
      status: 403,
      reason: "bad-scope",
      message: `the token's ${config.scopeClaim} claim is not a label scope: ${parsed.problems.join("; ")}`,
    };
  return { ok: true, principal: { role, scope: parsed.scope, actor } };
}
