import { isRole, type Role, roleAllows } from "../config/roles.js";
import type { Principal } from "./principal.js";

/**
 * Which role each API route needs: ONE table, the OpenAPI document's own security requirements.
 * OpenAPI 3.1 lets an `http` bearer requirement list role names (§4.8.30: "for other security
 * scheme types, the array MAY contain a list of role names"), so each operation declares its role
 * where it is described: `security: [{ bearer: ["operator"] }]`. The API enforces what it finds
 * there and nothing else; a route the document does not describe, or describes without a role, is
 * refused for every caller (deny by default), and the table test walks the same document.
 */

/** How one route is guarded. */
export type RouteAccess =
  /** A bearer credential with at least this role. */
  | { kind: "role"; role: Role }
  /** Its own credential (the installer's callback token), checked by the handler. */
  | { kind: "own-credential" }
  /** Described without a usable role: refused for everyone, so a forgotten role cannot open a route. */
  | { kind: "undeclared"; why: string };

/** The name of the bearer scheme in the document's `components.securitySchemes`. */
export const BEARER_SCHEME = "bearer";

const METHODS = ["get", "put", "post", "patch", "delete"] as const;

/** `METHOD /path/{param}` as the document writes it. */
export type RouteKey = string;

/** Read each operation's required role out of an OpenAPI document. */
export function routeAccessTable(document: Record<string, unknown>): Map<RouteKey, RouteAccess> {
  const table = new Map<RouteKey, RouteAccess>();
  const paths = (document.paths ?? {}) as Record<string, Record<string, { security?: unknown } | undefined>>;
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      if (operation === undefined) continue;
      table.set(`${method.toUpperCase()} ${path}`, accessOf(operation.security));
    }
  }
  return table;
}

function accessOf(security: unknown): RouteAccess {
  if (!Array.isArray(security) || security.length !== 1 || typeof security[0] !== "object" || security[0] === null)
    return { kind: "undeclared", why: "its security must be exactly one requirement" };
  const requirement = security[0] as Record<string, unknown>;
  const schemes = Object.keys(requirement);
  if (schemes.length !== 1) return { kind: "undeclared", why: "its requirement must name exactly one scheme" };
  const roles = requirement[schemes[0]!];
  if (schemes[0] !== BEARER_SCHEME) return { kind: "own-credential" };
  if (!Array.isArray(roles) || roles.length !== 1 || typeof roles[0] !== "string" || !isRole(roles[0]))
    return { kind: "undeclared", why: `its ${BEARER_SCHEME} requirement must list exactly one role` };
  return { kind: "role", role: roles[0] };
}

/**
 * A Fastify route (`/api/v1/nodes/:ref`) as the document's key (`/nodes/{ref}`). HEAD is answered
 * by the GET route (Fastify adds it), so it needs what GET needs.
 */
export function routeKeyOf(method: string, url: string, prefix: string): RouteKey {
  const path = url.startsWith(prefix) ? url.slice(prefix.length) : url;
  const verb = method.toUpperCase() === "HEAD" ? "GET" : method.toUpperCase();
  return `${verb} ${path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`;
}

/** Why a caller may not use a route, as data: the API turns it into a 403 that names the role needed. */
export interface AccessRefusal {
  code: "ROLE_REQUIRED" | "UNSCOPED_REQUIRED" | "ROUTE_UNDECLARED";
  message: string;
  /** The role the route needs (absent when no role can use it). */
  requiredRole?: Role;
}

/** May `principal` use a route guarded by `access`? undefined when it may. */
export function refusal(
  principal: Principal,
  access: RouteAccess | undefined,
  key: RouteKey,
): AccessRefusal | undefined {
  if (access === undefined || access.kind === "undeclared")
    return {
      code: "ROUTE_UNDECLARED",
      message: `${key} declares no role in the API's OpenAPI document${access ? ` (${access.why})` : ""}, so it is refused for everyone`,
    };
  if (access.kind === "own-credential") return undefined;
  if (!roleAllows(principal.role, access.role))
    return {
      code: "ROLE_REQUIRED",
      message: `${key} needs the ${access.role} role; ${describePrincipal(principal)} has ${principal.role}`,
      requiredRole: access.role,
    };
  // A label scope narrows which nodes a caller reaches; what only an admin may do (identity, images,
  // tokens, the audit trail) is not about one node, so a scope cannot narrow it: it needs the whole fleet.
  if (access.role === "admin" && principal.scope !== undefined)
    return {
      code: "UNSCOPED_REQUIRED",
      message: `${key} needs the admin role over the whole fleet; ${describePrincipal(principal)} is limited to ${formatScope(principal.scope)}`,
      requiredRole: "admin",
    };
  return undefined;
}

export function describePrincipal(principal: Principal): string {
  const { actor } = principal;
  if (actor.kind === "token") return `token ${actor.id}${actor.name ? ` (${actor.name})` : ""}`;
  return `${actor.kind === "oidc" ? "subject" : "user"} ${actor.id}${actor.name ? ` (${actor.name})` : ""}`;
}

/** Whether a node's labels carry every label of the scope. */
export function inScope(labels: Readonly<Record<string, string>>, scope: Readonly<Record<string, string>>): boolean {
  return Object.entries(scope).every(([key, value]) => Object.hasOwn(labels, key) && labels[key] === value);
}

/**
 * A node filter's labels narrowed to a scope: undefined when the two ask for different values of
 * one label (nothing can match both).
 */
export function narrowLabels(
  labels: Readonly<Record<string, string>> | undefined,
  scope: Readonly<Record<string, string>>,
): Record<string, string> | undefined {
  const narrowed: Record<string, string> = { ...labels };
  for (const [key, value] of Object.entries(scope)) {
    if (Object.hasOwn(narrowed, key) && narrowed[key] !== value) return undefined;
    narrowed[key] = value;
  }
  return narrowed;
}

/** Label keys and values as the inventory allows them in a scope: no `=` or `,` in a key, no `,` in a value. */
const SCOPE_PAIR = /^([^=,\s]+)=([^,]*)$/;

/**
 * `rack=a1,site=fra` (or several such strings) → `{ rack: "a1", site: "fra" }`; a list of the
 * problems when a pair is not `key=value` or a key is given twice.
 */
export function parseScope(parts: readonly string[]): { scope: Record<string, string> } | { problems: string[] } {
  const scope: Record<string, string> = {};
  const problems: string[] = [];
  for (const pair of parts.flatMap((part) => part.split(",")).map((pair) => pair.trim())) {
    const match = SCOPE_PAIR.exec(pair);
    if (!match) problems.push(`${JSON.stringify(pair)} is not key=value`);
    else if (Object.hasOwn(scope, match[1]!)) problems.push(`label ${match[1]} is given twice`);
    else scope[match[1]!] = match[2]!;
  }
  if (problems.length === 0 && Object.keys(scope).length === 0) problems.push("a scope needs at least one key=value");
  return problems.length ? { problems } : { scope };
}

export function formatScope(scope: Readonly<Record<string, string>>): string {
  return Object.entries(scope)
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
}
