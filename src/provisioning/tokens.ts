import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ApiTokenRecord, Role, Store } from "../store/store.js";

/** How fresh an API token's `lastUsedAt` is kept. */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * Bearer and callback tokens. Only the sha256 of a token is stored: a copy of the database does
 * not let anyone call the API or impersonate an installer. 32 random bytes make a dictionary or
 * brute-force attack on the hash pointless, so a plain (unsalted, fast) digest is enough.
 */

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A short random id for tokens, nodes and provisioning attempts (prefix + 12 hex digits). */
export function randomId(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** URL- and kernel-command-line-safe secret: base64url has no space, `&`, `=` or quote. */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
}

/**
 * The callback token of one provisioning attempt: HMAC-SHA256 of its id under the server's key,
 * base64url (43 characters, safe on a kernel command line). Deterministic, so every fetch of the
 * install script in one attempt carries the same token and no fetch mints another.
 */
export function callbackTokenFor(key: string, provisioningId: string): string {
  return createHmac("sha256", key).update(`centra-pxe callback ${provisioningId}`, "utf8").digest("base64url");
}

/** `cpxe_<id>_<secret>`: the prefix makes a leaked token recognisable to secret scanners. */
export function formatApiToken(id: string, secret: string): string {
  return `cpxe_${id}_${secret}`;
}

export interface CreatedApiToken {
  record: ApiTokenRecord;
  /** Shown once; only its hash is stored. */
  token: string;
}

export interface ApiTokenGrant {
  /** Default `admin`, as every token was before roles. */
  role?: Role;
  scope?: Record<string, string>;
  expiresAt?: Date;
  now?: Date;
}

export async function createApiToken(store: Store, name: string, grant: ApiTokenGrant = {}): Promise<CreatedApiToken> {
  const id = randomBytes(4).toString("hex");
  const token = formatApiToken(id, randomSecret());
  const record: ApiTokenRecord = {
    id,
    name,
    hash: hashToken(token),
    role: grant.role ?? "admin",
    ...(grant.scope !== undefined ? { scope: grant.scope } : {}),
    createdAt: (grant.now ?? new Date()).toISOString(),
    ...(grant.expiresAt !== undefined ? { expiresAt: grant.expiresAt.toISOString() } : {}),
  };
  await store.apiTokens.create(record);
  return { record, token };
}

export type ApiAuthResult =
  | { ok: true; token: ApiTokenRecord }
  | {
      ok: false;
      status: 401 | 403;
      reason: "missing" | "malformed" | "unknown" | "revoked" | "expired";
      message: string;
    };

/** Parse `Authorization: Bearer <token>`; undefined when absent, null when present but not a bearer token. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header.trim() === "") return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1]! : null;
}

/**
 * Check an admin token. 401 when there is none or it is not one of ours (RFC 6750 §3.1
 * invalid_token: try again with a valid one); 403 when it was ours and is revoked, so the caller
 * learns that retrying with it is pointless.
 */
export async function authenticateApiToken(
  store: Store,
  header: string | undefined,
  now: Date = new Date(),
): Promise<ApiAuthResult> {
  const presented = bearerToken(header);
  if (presented === undefined)
    return {
      ok: false,
      status: 401,
      reason: "missing",
      message:
        "this request needs an admin token: Authorization: Bearer <token> (create one with `centra-pxe token create`)",
    };
  if (presented === null)
    return { ok: false, status: 401, reason: "malformed", message: "the Authorization header is not `Bearer <token>`" };
  const hash = hashToken(presented);
  const record = await store.apiTokens.findByHash(hash);
  // The lookup is by hash, so timing reveals nothing of the secret; the compare is belt and braces.
  if (!record || !timingSafeEqual(Buffer.from(record.hash, "hex"), Buffer.from(hash, "hex"))) {
    return { ok: false, status: 401, reason: "unknown", message: "the token is not valid" };
  }
  if (record.revokedAt !== undefined)
    return {
      ok: false,
      status: 403,
      reason: "revoked",
      message: `token ${record.id} (${record.name}) was revoked at ${record.revokedAt}`,
    };
  // RFC 6750 §3.1: an expired token is invalid_token (401), the holder fetches a new one.
  if (record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now.getTime())
    return { ok: false, status: 401, reason: "expired", message: `token ${record.id} expired at ${record.expiresAt}` };
  // Every API read authenticates now, and each touch is a durable write (synchronous=FULL): record
  // "last used" at most once a minute per token, which is all `token list` needs to show.
  const lastUsed = record.lastUsedAt === undefined ? Number.NEGATIVE_INFINITY : Date.parse(record.lastUsedAt);
  if (now.getTime() - lastUsed >= LAST_USED_RESOLUTION_MS) await store.apiTokens.touch(record.id, now.toISOString());
  return { ok: true, token: record };
}
