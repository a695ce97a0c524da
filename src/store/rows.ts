import type { Role } from "../config/roles.js";
import { DEFAULT_IMAGE_ARCH, isImageArch } from "../files/image-arch.js";
import type { ApiTokenRecord, AuditOutcome, AuditRecord, CallbackTokenRecord, ImageVersionRecord } from "./store.js";

/**
 * Rows both stores read the same way (SQLite and PostgreSQL keep these columns as the same text),
 * and the record each becomes: one mapping, so the two stores cannot drift apart.
 */

export interface ImageRow {
  name: string;
  arch: string;
  version: string;
  files: string;
  cmdline: string;
  added_at: string;
}

export function imageFromRow(row: ImageRow): ImageVersionRecord {
  return {
    name: row.name,
    arch: isImageArch(row.arch) ? row.arch : DEFAULT_IMAGE_ARCH,
    version: row.version,
    files: JSON.parse(row.files) as ImageVersionRecord["files"],
    cmdline: row.cmdline,
    addedAt: row.added_at,
  };
}

export interface ApiTokenRow {
  id: string;
  name: string;
  hash: string;
  role: string;
  scope: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export function apiTokenFromRow(row: ApiTokenRow): ApiTokenRecord {
  return {
    id: row.id,
    name: row.name,
    hash: row.hash,
    role: row.role as Role,
    ...(row.scope === null ? {} : { scope: JSON.parse(row.scope) as Record<string, string> }),
    createdAt: row.created_at,
    ...optional("expiresAt", row.expires_at),
    ...optional("lastUsedAt", row.last_used_at),
    ...optional("revokedAt", row.revoked_at),
  };
}

export interface CallbackTokenRow {
  hash: string;
  node_id: string;
  provisioning_id: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export function callbackTokenFromRow(row: CallbackTokenRow): CallbackTokenRecord {
  return {
    hash: row.hash,
    nodeId: row.node_id,
    provisioningId: row.provisioning_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    ...optional("usedAt", row.used_at),
  };
}

export function optional<K extends string>(key: K, value: string | null): { [P in K]?: string } {
  return (value === null ? {} : { [key]: value }) as { [P in K]?: string };
}

export interface AuditRow {
  /** PostgreSQL returns a bigint as a string; SQLite an integer as a number. */
  seq: number | string;
  at: string;
  actor_kind: string;
  actor_id: string;
  actor_name: string | null;
  actor_issuer: string | null;
  action: string;
  target: string | null;
  summary: string;
  address: string;
  outcome: string;
  status: number;
}

export function auditFromRow(row: AuditRow): AuditRecord {
  return {
    seq: Number(row.seq),
    at: row.at,
    actor: {
      kind: row.actor_kind as AuditRecord["actor"]["kind"],
      id: row.actor_id,
      ...optional("name", row.actor_name),
      ...optional("issuer", row.actor_issuer),
    },
    action: row.action,
    ...optional("target", row.target),
    summary: JSON.parse(row.summary) as Record<string, unknown>,
    address: row.address,
    outcome: row.outcome as AuditOutcome,
    status: row.status,
  };
}
