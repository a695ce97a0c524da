import type { OidcConfig } from "../config/schema.js";
import { authenticateApiToken, bearerToken } from "../provisioning/tokens.js";
import type { Store } from "../store/store.js";
import { createOidcVerifier, type OidcVerifier, type OidcVerifierOptions } from "./oidc.js";
import { type Principal, principalOfToken } from "./principal.js";

export type Authentication =
  | { ok: true; principal: Principal }
  | {
      ok: false;
      status: 401 | 403 | 503;
      reason: string;
      message: string;
      /** The `WWW-Authenticate` value (RFC 6750 §3). */
      challenge: string;
    };

export interface Authenticator {
  /** Who an `Authorization` header proves the caller to be. */
  authenticate(header: string | undefined, now?: Date): Promise<Authentication>;
}

export interface AuthenticatorOptions {
  store: Store;
  /** `auth.oidc` as in force now: a reload may add, change or drop the identity provider. */
  oidc(): OidcConfig | undefined;
  verifier?: OidcVerifierOptions;
}

const REALM = 'Bearer realm="centra-pxe"';

/** RFC 6750 §3: no error code when the request carried no credential; `invalid_token` when it carried a bad one. */
function challenge(error: "invalid_token" | "invalid_request" | undefined, description?: string): string {
  if (error === undefined) return REALM;
  const quoted = (description ?? "").replace(/["\\]/g, "'");
  return `${REALM}, error="${error}"${description ? `, error_description="${quoted}"` : ""}`;
}

/** Three base64url segments (the last empty for `alg: none`): a JWS in compact form (RFC 7515 §7.1). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Local tokens (`cpxe_…`, `centra-pxe token create`) and, when `auth.oidc` is set, the identity
 * provider's JWTs, side by side: a bearer that looks like a JWT goes to the provider's keys, any
 * other to the token table.
 */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  let verifier: { key: string; verifier: OidcVerifier } | undefined;
  const verifierFor = (config: OidcConfig): OidcVerifier => {
    const key = JSON.stringify(config);
    if (verifier?.key !== key) verifier = { key, verifier: createOidcVerifier(config, options.verifier) };
    return verifier.verifier;
  };

  return {
    async authenticate(header, now = new Date()) {
      const presented = bearerToken(header);
      const oidc = options.oidc();
      if (typeof presented === "string" && oidc !== undefined && COMPACT_JWS.test(presented)) {
        const result = await verifierFor(oidc).verify(presented);
        if (result.ok) return result;
        return {
          ...result,
          challenge:
            result.status === 401
              ? challenge("invalid_token", result.message)
              : result.status === 403
                ? `${REALM}, error="insufficient_scope"`
                : REALM,
        };
      }
      const local = await authenticateApiToken(options.store, header, now);
      if (local.ok) return { ok: true, principal: principalOfToken(local.token) };
      const error =
        local.reason === "missing" ? undefined : local.reason === "malformed" ? "invalid_request" : "invalid_token";
      return {
        ok: false,
        status: local.status,
        reason: local.reason,
        message: oidc && local.reason === "missing" ? `${local.message}, or a JWT from ${oidc.issuer}` : local.message,
        // The description says no more than the message: "not valid" for a token we do not know.
        challenge: challenge(error, local.reason === "unknown" ? "the token is not valid" : undefined),
      };
    },
  };
}
