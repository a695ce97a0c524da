import type { Role } from "../config/roles.js";
import type { ApiTokenRecord, AuditActor } from "../store/store.js";

/** Who is calling and what they may do, however they proved it (a local token or an OIDC JWT). */
export interface Principal {
  role: Role;
  /** Only nodes with every one of these labels; absent: the whole fleet. */
  scope?: Record<string, string>;
  /** As recorded in the audit trail. */
  actor: AuditActor;
}

export function principalOfToken(token: ApiTokenRecord): Principal {
  return {
    role: token.role,
    ...(token.scope !== undefined ? { scope: token.scope } : {}),
    actor: { kind: "token", id: token.id, name: token.name },
  };
}

/** How a principal is named in node events (`actor`), as before roles: `token:<id> <name>`. */
export function actorLabel(principal: Principal): string {
  const { actor } = principal;
  if (actor.kind === "token") return `token:${actor.id} ${actor.name ?? ""}`.trimEnd();
  if (actor.kind === "oidc") return `oidc:${actor.id} ${actor.name ?? ""} (${actor.issuer ?? "?"})`.replace("  ", " ");
  return `local:${actor.id}`;
}
